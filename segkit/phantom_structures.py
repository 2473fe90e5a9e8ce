"""Seeded brain-MR-like volumes with twelve small labelled structures (training benchmarks, tests).

Each case is a T1-like head at 2 mm isotropic spacing (default array shape 80 x 100 x 85): a
bright skull rim, dark CSF, a folded cortical grey-matter ribbon over deep white matter, lateral
ventricles, and twelve
small deep structures (six left/right pairs, 200-1,400 voxels each) whose intensity differs by
about 10-25 % from the surrounding tissue. Positions and sizes jitter per case; a smooth bias
field and Rician-like noise are applied. Labels 1..12; 0 background.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from segkit.io.image import Geometry, write_image
from segkit.jsonio import write_json
from segkit.phantom import ellipsoid_distance, smooth_field

SHAPE = (80, 100, 85)
SPACING = 2.0
WHITE, GREY, CSF, SKULL = 1000.0, 680.0, 180.0, 1250.0
# name, centre (fraction of the head radius, z y x; x mirrored for the right side), radii (voxels), intensity factor
STRUCTURES = (
    ("thalamus", (0.05, 0.15, 0.16), (5.5, 8.0, 5.5), 0.80),
    ("caudate", (0.35, -0.22, 0.20), (6.0, 5.0, 4.0), 0.70),
    ("putamen", (0.05, -0.12, 0.42), (6.0, 6.5, 3.8), 0.76),
    ("pallidum", (0.00, -0.20, 0.24), (4.5, 4.5, 3.0), 0.90),
    ("hippocampus", (-0.25, 0.18, 0.34), (4.2, 8.5, 4.0), 0.66),
    ("amygdala", (-0.28, -0.18, 0.32), (4.2, 4.2, 4.2), 0.72),
)
LABEL_NAMES = [f"{name}_{side}" for name, *_ in STRUCTURES for side in ("left", "right")]


def make_structures_case(seed: int, shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """One case: image (z, y, x) float32 and label (z, y, x) uint8 with labels 1..12."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    centre = np.asarray(shape) / 2 + rng.uniform(-2, 2, 3)
    radii = np.asarray(shape) * rng.uniform(0.40, 0.44, 3)
    head_d = ellipsoid_distance(grid, centre, radii) + 0.02 * smooth_field(rng, shape, 5)
    brain = head_d < 0.88
    folds = smooth_field(rng, shape, 2.0)
    cortex_depth = np.clip((0.88 - head_d) / 0.25, 0, 1)
    # grey matter is a folded cortical ribbon: deep brain is white matter around the nuclei
    image = np.where(cortex_depth > 0.45 + 0.25 * folds, WHITE, GREY).astype(np.float32)
    image[(head_d >= 0.84) & brain] = CSF
    ventricle = ellipsoid_distance(grid, centre + np.array([4.0, -4.0, 0.0]), np.array([6.0, 12.0, 9.0]))
    image[ventricle < 1.0] = CSF
    image[(head_d >= 0.88) & (head_d < 0.97)] = CSF * 1.2
    image[(head_d >= 0.97) & (head_d < 1.0)] = SKULL
    label = np.zeros(shape, dtype=np.uint8)
    for index, (_, rel, size, factor) in enumerate(STRUCTURES):
        for side, sign in enumerate((-1.0, 1.0)):
            pos = centre + np.asarray(rel) * radii * np.array([1, 1, sign]) + rng.uniform(-2.0, 2.0, 3)
            axes = np.asarray(size) * rng.uniform(0.85, 1.15, 3)
            mask = (ellipsoid_distance(grid, pos, axes) + 0.08 * smooth_field(rng, shape, 2.0) < 1.0) & brain
            label[mask] = 2 * index + side + 1
            image[mask] = WHITE * factor * rng.uniform(0.97, 1.03)
    image = ndimage.gaussian_filter(image, 0.6)
    bias = np.exp(0.12 * smooth_field(rng, shape, 15))
    noisy = np.abs(image * bias * rng.uniform(0.9, 1.1) + rng.normal(0, 30, shape) + 1j * rng.normal(0, 30, shape))
    return np.where(head_d < 1.0, noisy, rng.rayleigh(8, shape)).astype(np.float32), label


def generate_structures_dataset(root: str | Path, num_cases: int = 3, seed: int = 0,
                                shape: tuple[int, int, int] = SHAPE) -> Path:
    """Write num_cases labelled cases in the nnU-Net raw layout with dataset.json; return the folder."""
    root = Path(root)
    for index in range(num_cases):
        image, label = make_structures_case(seed * 100_003 + index, shape)
        geometry = Geometry((SPACING,) * 3, (-85.0, -100.0, -80.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), tuple(shape[::-1]))
        case_id = f"brain_{index + 1:03d}"
        write_image(image, geometry, root / "imagesTr" / f"{case_id}_0000.nii.gz")
        write_image(label, geometry, root / "labelsTr" / f"{case_id}.nii.gz")
    labels = {"background": 0} | {name: i + 1 for i, name in enumerate(LABEL_NAMES)}
    write_json(root / "dataset.json", {"name": "BrainStructures", "channel_names": {"0": "T1"}, "labels": labels,
                                       "numTraining": num_cases, "file_ending": ".nii.gz"})
    return root


def main(argv: list[str] | None = None) -> None:
    """python -m segkit.phantom_structures OUT [-n 3] [--seed 0]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("-n", "--num-cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    generate_structures_dataset(args.out, args.num_cases, args.seed)


if __name__ == "__main__":
    main()

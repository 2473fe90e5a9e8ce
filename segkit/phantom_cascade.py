"""Seeded large abdominal-CT-like volumes whose labels need whole-organ context (the cascade benchmark, tests).

Each case is a CT-like body (default array shape 48 x 160 x 192 at 2.5 x 1 x 1 mm) holding one
large organ (an ellipsoid spanning about half the body's width, shifted and resized per case)
with three to five round lesions inside it. Every lesion looks the same, but its label says
which half of the organ it lies in: 2 ("lesion_left_half") when its centre is on the organ's
low-x side of the organ's own centre, 3 ("lesion_right_half") otherwise; the organ is 1.
Telling the two apart needs to see the organ's extent along x, which a full-resolution patch
much smaller than the organ does not; a low-resolution stage seeing the whole organ does. The
organ's position moves with the case, so the image position alone does not give the half.
Lesions keep a margin of one radius from the organ's midline so every label is well defined.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from segkit.io.image import Geometry, write_image
from segkit.jsonio import write_json
from segkit.phantom import ellipsoid_distance, smooth_field

SHAPE = (48, 160, 192)
SPACING = (2.5, 1.0, 1.0)           # (z, y, x) mm
AIR, FAT, ORGAN, LESION = -1000.0, -80.0, 110.0, 55.0
LABELS = {"background": 0, "organ": 1, "lesion_left_half": 2, "lesion_right_half": 3}


def _lesion_centres(rng: np.random.Generator, centre: np.ndarray, radii: np.ndarray, count: int,
                    lesion_radius: float) -> list[np.ndarray]:
    """Up to `count` lesion centres well inside the organ, apart, at least 1.5 lesion radii off its x midline."""
    centres: list[np.ndarray] = []
    for _ in range(200 * count):          # bounded: a small organ may hold fewer lesions
        if len(centres) == count:
            break
        offset = rng.uniform(-0.65, 0.65, 3) * radii
        if abs(offset[2]) < 1.5 * lesion_radius or np.linalg.norm(offset / radii) > 0.7:
            continue
        candidate = centre + offset
        scaled = np.array([SPACING[0] / SPACING[2], 1.0, 1.0])    # distances in in-plane voxels
        if all(np.linalg.norm((candidate - other) * scaled) > 2.5 * lesion_radius for other in centres):
            centres.append(candidate)
    return centres


def make_cascade_case(seed: int, shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """One case: CT-like image (z, y, x) float32 in HU and label (z, y, x) uint8 (0..3)."""
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, dtype=np.float32)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    body = ellipsoid_distance(grid, size / 2, size * np.array([0.6, 0.44, 0.47])) < 1.0
    image = np.where(body, FAT + 25.0 * smooth_field(rng, shape, 4.0), AIR).astype(np.float32)
    radii = size * np.array([0.34, 0.2, 0.25]) * rng.uniform(0.85, 1.1, 3)
    centre = size / 2 + np.array([0.0, 1.0, 1.0]) * rng.uniform(-0.1, 0.1, 3) * size
    organ = ellipsoid_distance(grid, centre, radii) + 0.04 * smooth_field(rng, shape, 6.0) < 1.0
    label = np.zeros(shape, dtype=np.uint8)
    label[organ] = 1
    image[organ] = ORGAN
    lesion_radius = float(min(radii[1:]) * 0.22)
    for position in _lesion_centres(rng, centre, radii, int(rng.integers(3, 6)), lesion_radius):
        axes = lesion_radius * rng.uniform(0.8, 1.2, 3) / np.array([SPACING[0] / SPACING[2], 1.0, 1.0])
        lesion = (ellipsoid_distance(grid, position, axes) < 1.0) & organ
        label[lesion] = 2 if position[2] < centre[2] else 3
        image[lesion] = LESION
    image = ndimage.gaussian_filter(image, 0.7) + rng.normal(0, 18, shape).astype(np.float32)
    return image.astype(np.float32), label


def generate_cascade_dataset(root: str | Path, num_cases: int = 8, seed: int = 0,
                             shape: tuple[int, int, int] = SHAPE, prefix: str = "abdomen",
                             folder: str = "imagesTr", label_folder: str = "labelsTr") -> Path:
    """Write num_cases labelled cases in the nnU-Net raw layout (dataset.json with the training cases); return root."""
    root = Path(root)
    geometry = Geometry(tuple(SPACING[::-1]), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), tuple(shape[::-1]))
    for index in range(num_cases):
        image, label = make_cascade_case(seed * 100_003 + index, shape)
        case_id = f"{prefix}_{index + 1:03d}"
        write_image(image, geometry, root / folder / f"{case_id}_0000.nii.gz")
        write_image(label, geometry, root / label_folder / f"{case_id}.nii.gz")
    if folder == "imagesTr":   # test cases (imagesTs) leave the training set's dataset.json as it is
        write_json(root / "dataset.json", {"name": "CascadeAbdomen", "channel_names": {"0": "CT"}, "labels": LABELS,
                                           "numTraining": num_cases, "file_ending": ".nii.gz"})
    return root


def main(argv: list[str] | None = None) -> None:
    """python -m segkit.phantom_cascade OUT [-n 8] [--seed 0]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("-n", "--num-cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    generate_cascade_dataset(args.out, args.num_cases, args.seed)


if __name__ == "__main__":
    main()

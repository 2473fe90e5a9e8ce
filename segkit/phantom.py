"""Seeded multi-modal brain-tumour-like phantoms for the demo and the tests.

Each case is an ellipsoidal "head" (zero outside, so crop-to-nonzero matters) with
four MR-like channels, anisotropic spacing, an oblique (non-identity) direction, a
smooth bias field and noise, and a nested lesion: edema around a tumour core whose
rim enhances and whose centre is necrotic. Tissue labels: 1 necrosis, 2 edema,
3 enhancing (BraTS 2023 numbering; BraTS 2021 writes enhancing as 4).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from segkit.io.image import Geometry, write_image
from segkit.jsonio import write_json

CHANNELS = ("FLAIR", "T1", "T1ce", "T2")
# mean intensity per tissue (background tissue, necrosis, edema, enhancing) for each channel
TISSUE_MEANS = {
    "FLAIR": (300.0, 250.0, 700.0, 450.0),
    "T1": (500.0, 200.0, 380.0, 420.0),
    "T1ce": (500.0, 220.0, 400.0, 1100.0),
    "T2": (400.0, 900.0, 800.0, 600.0),
}
LAYOUTS = ("nnunet", "msd", "brats2021", "brats2023")
MIN_AXIS = 4                # voxels: fewer on an axis leaves the head or the lesion empty for some seeds


@dataclass(frozen=True)
class PhantomSpec:
    """Size and spacing of generated cases (array order z, y, x)."""

    shape: tuple[int, int, int] = (32, 48, 48)
    spacing: tuple[float, float, float] = (3.0, 1.2, 1.2)
    oblique_degrees: float = 12.0

    def __post_init__(self) -> None:
        """Refuse a shape too small to hold a head around a nested lesion (it would come out empty)."""
        if len(self.shape) != 3 or min(self.shape) < MIN_AXIS:
            raise ValueError(f"phantom shape {'x'.join(str(n) for n in self.shape)} is too small: every axis "
                             f"needs at least {MIN_AXIS} voxels to hold a head around a nested lesion")


def _rotation(axis_angles_deg: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix from rotations about x, y and z (degrees)."""
    ax, ay, az = np.deg2rad(axis_angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field (all zeros where smoothing leaves it flat); every phantom's."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    # Centre before scaling: a sigma near the volume's size leaves a field that is nearly its (non-zero) mean,
    # and dividing that by its tiny spread made exp(bias) overflow on small phantoms.
    field -= field.mean()
    return field / (field.std() + 1e-8)


def ellipsoid_distance(grid_mm: np.ndarray, centre_mm: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
    """Normalised ellipsoid distance (1 on the surface) at every voxel; every phantom's."""
    diff = (grid_mm - centre_mm[:, None, None, None]) / radii_mm[:, None, None, None]
    return np.sqrt((diff ** 2).sum(axis=0))


def make_case(seed: int, spec: PhantomSpec = PhantomSpec()) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Generate one case: images (C, z, y, x) float32, label (z, y, x) uint8, and its geometry."""
    rng = np.random.default_rng(seed)
    shape = spec.shape
    spacing = np.asarray(spec.spacing, dtype=float)
    grid_mm = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")).astype(np.float32)
    extent = np.asarray(shape) * spacing
    head_centre = extent / 2 + rng.uniform(-0.04, 0.04, 3) * extent
    head_radii = extent * rng.uniform(0.40, 0.46, 3)
    wobble = smooth_field(rng, shape, sigma=4)
    head = ellipsoid_distance(grid_mm, head_centre, head_radii) + 0.03 * wobble < 1.0

    lesion_radius = float(np.min(head_radii)) * rng.uniform(0.5, 0.65)
    offset_dir = rng.standard_normal(3)
    offset_dir /= np.linalg.norm(offset_dir)
    lesion_centre = head_centre + offset_dir * (np.min(head_radii) - lesion_radius) * rng.uniform(0.0, 0.5)
    lesion_radii = lesion_radius * rng.uniform(0.8, 1.2, 3)
    lesion_distance = ellipsoid_distance(grid_mm, lesion_centre, lesion_radii) + 0.12 * smooth_field(rng, shape, 3)
    label = np.zeros(shape, dtype=np.uint8)
    label[(lesion_distance < 1.0) & head] = 2
    label[(lesion_distance < 0.7) & head] = 3
    label[(lesion_distance < 0.45) & head] = 1

    bias = np.exp(0.15 * smooth_field(rng, shape, sigma=12))
    texture = smooth_field(rng, shape, sigma=1.5)
    images = np.zeros((len(CHANNELS),) + shape, dtype=np.float32)
    for index, channel in enumerate(CHANNELS):
        means = TISSUE_MEANS[channel]
        tissue = np.choose(label, (means[0], means[1], means[2], means[3])).astype(np.float32)
        scale = rng.uniform(0.8, 1.25)
        noisy = tissue * (1 + 0.05 * texture) + rng.normal(0, 0.05 * means[0], shape)
        images[index] = np.where(head, noisy * bias * scale, 0).clip(min=0)

    direction = _rotation(rng.uniform(-spec.oblique_degrees, spec.oblique_degrees, 3))
    itk_spacing = tuple(float(s) for s in spacing[::-1])
    origin = tuple(float(v) for v in rng.uniform(-120, -80, 3))
    geometry = Geometry(itk_spacing, origin, tuple(float(v) for v in direction.flatten()), tuple(shape[::-1]))
    return images, label, geometry


def _brats_names(layout: str, index: int) -> tuple[str, tuple[str, ...], str]:
    """Case folder name, channel suffixes and label suffix of a BraTS layout."""
    if layout == "brats2021":
        return f"BraTS2021_{index:05d}", ("flair", "t1", "t1ce", "t2"), "seg"
    return f"BraTS-GLI-{index:05d}-000", ("t2f", "t1n", "t1c", "t2w"), "seg"


def write_case(root: Path, layout: str, index: int, images: np.ndarray, label: np.ndarray | None,
               geometry: Geometry, split: str = "Tr") -> str:
    """Write one generated case in the chosen layout; return its case id."""
    if layout == "nnunet":
        case_id = f"phantom_{index:03d}"
        for channel in range(images.shape[0]):
            write_image(images[channel], geometry, root / f"images{split}" / f"{case_id}_{channel:04d}.nii.gz")
        if label is not None:
            write_image(label, geometry, root / f"labels{split}" / f"{case_id}.nii.gz")
        return case_id
    if layout == "msd":
        case_id = f"BRATS_{index:03d}"
        volumes = [geometry.apply_to(sitk.GetImageFromArray(images[c])) for c in range(images.shape[0])]
        out = root / f"images{split}" / f"{case_id}.nii.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.JoinSeries(volumes), str(out), True)
        if label is not None:
            write_image(label, geometry, root / f"labels{split}" / f"{case_id}.nii.gz")
        return case_id
    case_id, suffixes, label_suffix = _brats_names(layout, index)
    for channel, suffix in enumerate(suffixes):
        write_image(images[channel], geometry, root / case_id / f"{case_id}-{suffix}.nii.gz"
                    if layout == "brats2023" else root / case_id / f"{case_id}_{suffix}.nii.gz")
    if label is not None:
        brats_label = label.copy()
        if layout == "brats2021":
            brats_label[label == 3] = 4
        sep = "-" if layout == "brats2023" else "_"
        write_image(brats_label, geometry, root / case_id / f"{case_id}{sep}{label_suffix}.nii.gz")
    return case_id


def _dataset_json(layout: str, num_training: int, training_ids: list[str], test_ids: list[str]) -> dict | None:
    """dataset.json for the nnunet and msd layouts (BraTS folders have none)."""
    if layout == "nnunet":
        return {"name": "Phantom", "description": "segkit generated brain-tumour phantom",
                "channel_names": {str(i): name for i, name in enumerate(CHANNELS)},
                "labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3},
                "numTraining": num_training, "file_ending": ".nii.gz"}
    if layout == "msd":
        return {"name": "PhantomTumour", "tensorImageSize": "4D",
                "modality": {str(i): name for i, name in enumerate(CHANNELS)},
                "labels": {"0": "background", "1": "necrosis", "2": "edema", "3": "enhancing"},
                "numTraining": num_training, "numTest": len(test_ids),
                "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in training_ids],
                "test": [f"./imagesTs/{c}.nii.gz" for c in test_ids]}
    return None


def generate_dataset(root: str | Path, num_cases: int = 8, layout: str = "nnunet", seed: int = 0,
                     spec: PhantomSpec = PhantomSpec(), num_test: int = 0, test_labels: bool = False) -> Path:
    """Write num_cases labelled cases (+ num_test test cases, labelled in labelsTs if test_labels)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    training_ids: list[str] = []
    test_ids: list[str] = []
    for index in range(num_cases + num_test):
        images, label, geometry = make_case(seed * 100_003 + index, spec)
        is_test = index >= num_cases
        keep_label = test_labels or not is_test
        case_id = write_case(root, layout, index + 1, images, label if keep_label else None, geometry,
                             split="Ts" if is_test else "Tr")
        (test_ids if is_test else training_ids).append(case_id)
    dataset_json = _dataset_json(layout, num_cases, training_ids, test_ids)
    if dataset_json is not None:
        write_json(root / "dataset.json", dataset_json)
    return root


def main(argv: list[str] | None = None) -> None:
    """Command-line entry for generating a phantom dataset (python -m segkit.phantom OUT)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("-n", "--num-cases", type=int, default=8)
    parser.add_argument("--layout", choices=LAYOUTS, default="nnunet")
    parser.add_argument("--shape", type=int, nargs=3, default=list(PhantomSpec.shape))
    parser.add_argument("--spacing", type=float, nargs=3, default=list(PhantomSpec.spacing))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        spec = PhantomSpec(tuple(args.shape), tuple(args.spacing))
    except ValueError as err:           # checked before anything is written
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    generate_dataset(args.out, args.num_cases, args.layout, args.seed, spec)


if __name__ == "__main__":
    main()

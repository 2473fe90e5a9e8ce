"""The same physical image stored in several orientations, with lateralised labels.

`lateral_case` builds a two-channel anisotropic volume in the canonical LPS frame (array x
increases towards the patient's left): a "Left-Blob" on the patient's left and a "Right-Blob"
on the right, told apart only by an intensity ramp that rises towards the patient's left in
the left blob and towards the right in the right one (so a network must see the axes the
right way round). `stored_as` re-stores it with another ITK direction, voxel for voxel.
`plan_and_preprocess_lateral` and `train_calibrated` make a tiny trained model of it in seconds
(the session fixture `lateral_model` in conftest.py shares one between the end-to-end tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from training_data import TINY_ARCH

from segkit.cli import main
from segkit.io.image import Geometry, write_image
from segkit.jsonio import write_json
from segkit.preprocessing.orientation import canonical_geometry, reorientation_for

LABELS = {"background": 0, "Left-Blob": 1, "Right-Blob": 2}
DIRECTIONS = {
    "LPS": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    "RAS": (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),
    # sagittal slices: index i runs anterior, j inferior, k left (code "AIL")
    "AIL": (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
    # the same sagittal slices stacked towards the patient's right: against the DICOM slice normal (A x I = L)
    "AIR": (0.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
}


def lateral_case(seed: int = 0, shape: tuple[int, int, int] = (10, 20, 24),
                 spacing_zyx: tuple[float, float, float] = (3.0, 1.0, 1.2)) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Canonical (LPS) images (2, z, y, x) with integer intensities, labels (z, y, x) and their geometry."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    nz, ny, nx = shape
    head = ((z - nz / 2) / (nz / 2)) ** 2 + ((y - ny / 2) / (ny / 2.2)) ** 2 + ((x - nx / 2) / (nx / 2.1)) ** 2 < 1
    images = np.zeros((2,) + shape, dtype=np.float32)
    images[0][head] = 40 + rng.normal(0, 2, int(head.sum()))
    images[1][head] = 60 + 10 * (y[head] / ny)
    labels = np.zeros(shape, dtype=np.uint8)
    radius = nx / 5 + rng.uniform(-0.3, 0.3)
    cy, cz = ny / 2 + rng.uniform(-1, 1), nz / 2 + rng.uniform(-0.5, 0.5)
    for value, centre_x, rise in ((1, 0.72 * nx, 1.0), (2, 0.28 * nx, -1.0)):
        blob = ((x - centre_x) / radius) ** 2 + ((y - cy) / radius) ** 2 + ((z - cz) / max(radius / 2.5, 1.2)) ** 2 < 1
        labels[blob] = value
        images[0][blob] = 120 + 50 * rise * (x[blob] - centre_x) / radius   # rises towards this blob's side
    images = np.round(images)
    geometry = Geometry(tuple(reversed(spacing_zyx)), (-12.0, 30.0, 7.5), DIRECTIONS["LPS"], tuple(reversed(shape)))
    return images, labels, geometry


def stored_as(images: np.ndarray, labels: np.ndarray, geometry: Geometry, direction: tuple[float, ...]
              ) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """The canonical case re-stored with another axis-aligned ITK direction (same voxels in physical space)."""
    reorientation = reorientation_for(direction)
    stored_images = np.ascontiguousarray(reorientation.from_canonical(images))
    stored_labels = np.ascontiguousarray(reorientation.from_canonical(labels))
    spacing = tuple(reversed(reorientation.stored_values(list(geometry.array_spacing))))
    probe = Geometry(spacing, (0.0, 0.0, 0.0), tuple(direction), tuple(reversed(stored_labels.shape)))
    shift = np.asarray(canonical_geometry(probe).origin)      # where the canonical first voxel lands
    origin = tuple(float(v) for v in np.asarray(geometry.origin) - shift)
    stored = Geometry(spacing, origin, tuple(direction), probe.size)
    back = canonical_geometry(stored)
    assert np.allclose(back.origin, geometry.origin) and np.allclose(back.direction, geometry.direction)
    return stored_images, stored_labels, stored


def write_lateral_dataset(root: Path, codes: list[str], num_cases: int = 4, **case_options) -> Path:
    """A raw dataset of lateral cases, case i stored with DIRECTIONS[codes[i % len(codes)]] (options: lateral_case's)."""
    for index in range(num_cases):
        images, labels, geometry = lateral_case(seed=index, **case_options)
        images, labels, geometry = stored_as(images, labels, geometry, DIRECTIONS[codes[index % len(codes)]])
        for channel in range(images.shape[0]):
            write_image(images[channel], geometry, root / "imagesTr" / f"case_{index:03d}_{channel:04d}.nii.gz")
        write_image(labels, geometry, root / "labelsTr" / f"case_{index:03d}.nii.gz")
    write_json(root / "dataset.json", {"name": "Lateral", "channel_names": {"0": "A", "1": "B"}, "labels": LABELS,
                                       "numTraining": num_cases, "file_ending": ".nii.gz"})
    return root



def plan_and_preprocess_lateral(root: Path, codes: list[str]) -> tuple[Path, Path]:
    """A lateral dataset stored with the given orientations, planned (tiny U-Net) and preprocessed."""
    dataset = write_lateral_dataset(root / "Lateral", codes, num_cases=4)
    work = root / "work"
    assert main(["plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres",
                 "--network", "unet", "--no-tradeoff"]) == 0
    plans = json.loads((work / "plans.json").read_text())
    entry = plans["configurations"]["3d_fullres"]
    entry.update(architecture=dict(TINY_ARCH), patch_size=[8, 16, 16], batch_size=2)
    (work / "plans.json").write_text(json.dumps(plans))
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    return dataset, work


def train_calibrated(dataset: Path, work: Path, augment: str, *extra: str) -> None:
    """The training the orientation safety tests were calibrated with: 100 steps of a tiny network on 8x16x16
    patches, PyTorch's init (He's, the measured default for real-sized networks, needs ~200 steps here) and 1 of 2
    patches on a blob."""
    plans = json.loads((work / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["init"] = "pytorch"
    (work / "plans.json").write_text(json.dumps(plans))
    assert main(["train", str(dataset), "--work-dir", str(work), "-f", "all", "--epochs", "5",
                 "--iterations-per-epoch", "20", "--recipe", "short-cpu", "--augment", augment, "--no-fit",
                 "--recipe-set", "foreground_fraction=0.5",
                 "--validate-every", "100", "--device", "cpu", "--num-workers", "0", "--quiet", *extra]) == 0


def patient_left_mm(label: np.ndarray, geometry: Geometry, value: int) -> float:
    """Mean physical x (LPS: larger is further towards the patient's left) of a label's voxels."""
    canonical = reorientation_for(geometry.direction).to_canonical(label)
    target = canonical_geometry(geometry)
    x_index = np.argwhere(canonical == value)[:, 2]
    return float(target.origin[0] + target.spacing[0] * x_index.mean())


# the rotation that leaves 48.19 degrees on every axis after the best axis assignment (issue #25)
WORST_SYMMETRIC = tuple(float(v) for v in (np.array([[2, -1, 2], [2, 2, -1], [-1, 2, 2]]) / 3).flatten())


def tilted_direction(degrees: float) -> tuple[float, ...]:
    """A rotation about the oblique axis (1, 2, 3) whose residual rotation (oblique_degrees) is `degrees`."""
    from scipy.optimize import brentq
    from scipy.spatial.transform import Rotation

    from segkit.preprocessing.orientation import oblique_degrees

    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)

    def matrix(angle: float) -> np.ndarray:
        return Rotation.from_rotvec(axis * np.radians(angle)).as_matrix()

    angle = brentq(lambda a: oblique_degrees(tuple(matrix(a).flatten())) - degrees, 0.0, 60.0)
    return tuple(float(v) for v in matrix(angle).flatten())


def tilted_grid(geometry: Geometry, direction: tuple[float, ...]) -> Geometry:
    """A grid of the same spacing with this direction covering the whole extent of `geometry`'s voxels."""
    from segkit.preprocessing.oblique import voxel_corners

    matrix = np.reshape(direction, (3, 3))
    spacing = np.asarray(geometry.spacing, dtype=float)
    local = voxel_corners(geometry) @ matrix                 # corner coordinates along the tilted axes
    low, high = local.min(axis=0), local.max(axis=0)
    size = np.ceil((high - low) / spacing).astype(int)
    origin = matrix @ (low + spacing / 2)
    return Geometry(tuple(spacing), tuple(float(v) for v in origin), tuple(direction), tuple(int(n) for n in size))


def resampled(volume: np.ndarray, source: Geometry, target: Geometry, nearest: bool) -> np.ndarray:
    """A (z, y, x) volume carried onto another grid in physical space (linear or nearest), 0 outside."""
    import SimpleITK as sitk

    image = source.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.float32)))
    out = sitk.Resample(image, [int(n) for n in target.size], sitk.Transform(),
                        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, target.origin, target.spacing,
                        target.direction, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def stored_tilted(images: np.ndarray, labels: np.ndarray, geometry: Geometry, direction: tuple[float, ...]
                  ) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """The same anatomy resampled onto a tilted grid (same spacing, whole extent): an obliquely stored scan."""
    grid = tilted_grid(geometry, direction)
    tilted = np.stack([resampled(channel, geometry, grid, nearest=False) for channel in images])
    return np.round(tilted), resampled(labels, geometry, grid, nearest=True).astype(np.uint8), grid

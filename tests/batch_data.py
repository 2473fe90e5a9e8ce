"""Build small batch input folders (NIfTI and DICOM cases, some deliberately broken) for the batch tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.batch.cases import InputSpec
from segkit.batch.outputs import OutputRequest
from segkit.batch.pipeline import predict_cases
from segkit.io.dicom_seg import segment_names
from segkit.io.dicom_write import new_uid, write_dicom_series
from segkit.io.image import Geometry, write_image
from segkit.phantom import PhantomSpec, make_case

SPEC = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5))
CHANNEL_DESCRIPTIONS = ("T1 axial", "FLAIR axial")


def phantom(seed: int, channels: int = 2) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Images (channels, z, y, x) rounded to integers (DICOM stores int16), label, oblique geometry."""
    images, label, geometry = make_case(seed, SPEC)
    return np.round(images[:channels]), label, geometry


def write_file_case(folder: Path, case_id: str, seed: int, channels: int = 2) -> Geometry:
    """Write CASE_0000.nii.gz ... for a phantom case; return its geometry."""
    images, _, geometry = phantom(seed, channels)
    for channel in range(channels):
        write_image(images[channel], geometry, folder / f"{case_id}_{channel:04d}.nii.gz")
    return geometry


def write_dicom_case(folder: Path, case_id: str, seed: int, channels: int = 2, subfolders: bool = False) -> Geometry:
    """Write a DICOM study folder: one series per channel, described 'T1 axial', 'FLAIR axial'."""
    images, _, geometry = phantom(seed, channels)
    study, frame = new_uid(), new_uid()
    for channel in range(channels):
        target = folder / case_id / (f"{channel:04d}" if subfolders else "")
        write_dicom_series(images[channel], geometry, target, CHANNEL_DESCRIPTIONS[channel], study_uid=study,
                           frame_of_reference_uid=frame, series_number=channel + 1, patient_id=case_id)
    return geometry


def dicom_study_from_nifti(nifti_files: list[Path], study: Path) -> None:
    """Convert NIfTI channel files into one DICOM study (one series per channel, described as CHANNEL_DESCRIPTIONS)."""
    from segkit.io.image import read_image

    study_uid, frame = new_uid(), new_uid()
    for channel, path in enumerate(nifti_files):
        volume = read_image(path)
        write_dicom_series(volume.array, volume.geometry, study, CHANNEL_DESCRIPTIONS[channel], study_uid=study_uid,
                           frame_of_reference_uid=frame, series_number=channel + 1, patient_id=study.name)


def threshold_predict(images: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A deterministic stand-in network: channel-0 intensity bands become labels 1..3."""
    low, mid, high = np.percentile(images[0], [60, 80, 95])
    label = np.zeros(images.shape[1:], dtype=np.uint8)
    label[images[0] > low] = 2
    label[images[0] > mid] = 3
    label[images[0] > high] = 1
    return label


def make_broken_batch(folder: Path) -> dict[str, str]:
    """10 cases: 7 good (4 NIfTI, 3 DICOM) and 3 broken; return case id -> expected status."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for index in range(4):
        write_file_case(folder, f"nii_{index}", seed=index)
        expected[f"nii_{index}"] = "ok"
    for index in range(3):
        write_dicom_case(folder, f"dcm_{index}", seed=10 + index, subfolders=index == 0)
        expected[f"dcm_{index}"] = "ok"
    write_file_case(folder, "bad_truncated", seed=20)
    path = folder / "bad_truncated_0001.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    write_file_case(folder, "bad_channels", seed=21, channels=1)
    (folder / "bad_empty").mkdir()
    expected.update(bad_truncated="failed", bad_channels="failed", bad_empty="failed")
    return expected


class FunctionEngine:
    """A prediction engine around a plain predict(images, geometry) -> labels function (no network)."""

    def __init__(self, predict):
        self.predict = predict

    def prepare(self, case_id: str, images: np.ndarray, geometry: Geometry) -> tuple:
        """Nothing to preprocess: keep the case."""
        return case_id, images, geometry

    def compute(self, prepared: tuple) -> np.ndarray:
        """The label map of the stand-in network."""
        return self.predict(prepared[1], prepared[2])

    def finish(self, prepared: tuple, labels: np.ndarray, keep_probabilities=None):
        """A CasePrediction of the labels."""
        from segkit.inference.predictor import CasePrediction

        return CasePrediction(prepared[0], labels, prepared[2])

    def probability_metadata(self, prediction, file_ending: str, reference=None) -> dict:
        """No probabilities."""
        return {}


LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
SPEC_2CH = InputSpec(num_channels=2, channel_names=("T1", "FLAIR"), channel_map={0: "T1*", 1: "FLAIR*"})


def run_batch(cases, spec, request, predict, options, folder):
    """The prediction pipeline with a stand-in predict function."""
    return predict_cases(FunctionEngine(predict), cases, spec, request, options, folder)


def output_request(out: Path, **flags) -> OutputRequest:
    """An OutputRequest for the phantom labels."""
    return OutputRequest(out, LABELS, segment_names(LABELS), **flags)

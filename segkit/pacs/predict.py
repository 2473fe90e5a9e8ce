"""Predicting one unit (a received series or study) with the one prediction pipeline.

The model is loaded once (`segkit.inference.resolve.load_ensemble`: a model folder, work dir,
package or nnU-Net folder, as `segkit predict -m` takes). Each unit is one DICOM case run
through `segkit.batch.pipeline.predict_cases` with DICOM-SEG and statistics requested, so
the node's labels are `segkit predict`'s voxel for voxel. The SEG then gets its final UIDs
(`seg_uids`): derived from the unit's key (the source series or study UID) and the model's
identity, so predicting the same input again yields the same instance.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.pacs.config import ModelConfig
from segkit.pacs.store import Storage, derived_uid, durable_copy, durable_write
from segkit.plans import channel_names_of, dataset_name_of, labels_of, regions_class_order_of, segment_coding_of
from segkit.workdir import checkpoint_path, fold_dir


class UnitFailed(Exception):
    """A unit's prediction failed; permanent when the input itself is the problem (retrying cannot help)."""

    def __init__(self, reason: str, permanent: bool):
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


@dataclass(frozen=True)
class Result:
    """A predicted unit: the SEG ready to send (final UIDs) and its statistics file."""

    seg_path: Path
    seg_uid: str
    stats_path: Path
    seconds: float


def model_identity(engine: Any) -> str:
    """A digest naming the model: its checkpoints' bytes and the run settings, not where the folder lies."""
    identity = {k: v for k, v in engine.identity.items() if k != "model"}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    for member in engine.members:
        for fold in member.folds:
            checkpoint = checkpoint_path(fold_dir(Path(member.model_dir), fold), member.checkpoint)
            if checkpoint.is_file():
                with open(checkpoint, "rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
    return digest.hexdigest()


def seg_uids(key: str, identity: str) -> tuple[str, str]:
    """(SOP Instance UID, Series Instance UID) of the SEG of a unit: pure functions of its source UID and the model.

    Not of the instance list: a series that a crash cut short and the PACS completed later
    must not get a second SEG beside the first, so every SEG of one series and model is one instance.
    """
    return derived_uid("segkit-seg-instance", key, identity), derived_uid("segkit-seg-series", key, identity)


class UnitPredictor:
    """The loaded model plus what each unit's run needs (input spec, output request)."""

    def __init__(self, model: ModelConfig, storage: Storage):
        import torch

        from segkit.batch.cases import InputSpec
        from segkit.inference.predictor import InferenceOptions
        from segkit.inference.resolve import load_ensemble
        from segkit.io.dicom_series import parse_channel_map

        if model.threads:
            torch.set_num_threads(model.threads)
        self.storage = storage
        self.engine = load_ensemble(model.path, list(model.configuration) or None, list(model.folds) or None,
                                    model.checkpoint, model.device, InferenceOptions(tta=model.tta))
        plans = self.engine.plans
        channel_map = parse_channel_map(model.channel_map)
        if channel_map is not None and len(channel_map) != self.engine.num_channels:
            from segkit.errors import UserError

            raise UserError(f"[model] channel_map names {len(channel_map)} channel(s) but the model expects "
                            f"{self.engine.num_channels}")
        self.spec = InputSpec(self.engine.num_channels, tuple(channel_names_of(plans) or ()), channel_map)
        self.identity = model_identity(self.engine)
        name = dataset_name_of(plans)
        self.description = f"segkit {'segmentation' if name is None else name}"[:64]

    @property
    def unit_by_study(self) -> bool:
        """True when a unit is a whole study (several series feed the channels), else one series."""
        return self.spec.channel_map is not None or self.engine.num_channels > 1

    def predict(self, key: str, folder: Path) -> Result:
        """Predict one unit's case folder; the SEG with final UIDs in the outbox, statistics in results."""
        import time

        from segkit.batch.cases import BatchCase
        from segkit.batch.outputs import OutputRequest
        from segkit.batch.pipeline import RunOptions, predict_cases
        from segkit.io.dicom_seg import segment_names

        start = time.perf_counter()
        plans = self.engine.plans
        out = self.storage.work_folder(key)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        request = OutputRequest(out, labels_of(plans), segment_names(labels_of(plans), regions_class_order_of(plans)),
                                dicom_seg=True, statistics=True, segment_coding=segment_coding_of(plans))
        case = BatchCase(key, "dicom", (folder,))
        report = predict_cases(self.engine, [case], self.spec, request,
                               RunOptions(show_progress=False, run_info=dict(self.engine.identity)), folder.parent)
        entry = report.cases[0]
        if entry["status"] != "ok":
            # a UserError (bad input) has no traceback: the same input fails the same way every time
            raise UnitFailed(str(entry["reason"]), permanent="traceback" not in entry)
        sop_uid, series_uid = seg_uids(key, self.identity)
        seg_path = self.storage.outbox_path(key)
        durable_write(seg_path, self._restamped(out / entry["outputs"]["dicom_seg"], sop_uid, series_uid))
        stats_path = self.storage.stats_path(key)
        durable_copy(out / entry["outputs"]["statistics"], stats_path)
        return Result(seg_path, sop_uid, stats_path, time.perf_counter() - start)

    def _restamped(self, path: Path, sop_uid: str, series_uid: str) -> bytes:
        """The SEG file's bytes with its derived UIDs and the node's series description."""
        import pydicom
        from pydicom.uid import UID

        dataset = pydicom.dcmread(path)
        dataset.SOPInstanceUID = UID(sop_uid)
        dataset.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        dataset.SeriesInstanceUID = UID(series_uid)
        dataset.SeriesDescription = self.description
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

"""`segkit predict` in batch mode end to end: DICOM in, NIfTI + DICOM-SEG out, broken cases, SIGKILL + --continue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from batch_data import dicom_study_from_nifti, make_broken_batch, write_file_case
from inference_fixtures import make_model_dir, read_array, read_geometry

from segkit.cli import main
from segkit.io.dicom import read_dicom_study
from segkit.io.image import Geometry

FAST = ["--device", "cpu", "--no-tta", "--threads", "1"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained two-channel 3d_fullres model folder."""
    return make_model_dir(tmp_path_factory.mktemp("work"), num_channels=2)


def predict(*argv: str) -> int:
    """Run `segkit predict` in-process."""
    return main(["predict", *argv])


def test_dicom_study_gives_nifti_and_dicom_seg_on_the_source_geometry(tmp_path, model):
    geometry = write_file_case(tmp_path / "nifti", "study", seed=8)
    dicom_study_from_nifti(sorted((tmp_path / "nifti").glob("study_*.nii.gz")), tmp_path / "in" / "study")
    images = np.stack([read_array(p) for p in sorted((tmp_path / "nifti").glob("study_*.nii.gz"))])
    out = tmp_path / "out"
    assert predict("-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model), "--dicom-seg",
                   "--channel-map", "0=T1*,1=FLAIR*", *FAST) == 0
    label_path = out / "study.nii.gz"
    origin, spacing, direction, size = read_geometry(label_path)
    assert geometry.mismatch(Geometry(spacing, origin, direction, size)) is None
    labels = read_array(label_path)
    assert labels.shape == images.shape[1:]
    series = read_dicom_study(tmp_path / "in" / "study", 2, {0: "T1*", 1: "FLAIR*"}).reference
    sources = [pydicom.dcmread(p) for p in series.files]
    sop_to_index = {ds.SOPInstanceUID: k for k, ds in enumerate(sources)}
    seg = pydicom.dcmread(out / "study_seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["necrosis", "edema", "enhancing"]
    frames = seg.pixel_array
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        k = sop_to_index[frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient,
                                   sources[k].ImagePositionPatient, atol=1e-4)
        segment = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_array_equal(frames[index] > 0, labels[k] == segment)
    report = json.loads((out / "report.json").read_text())
    assert report["cases"][0]["outputs"] == {"label": "study.nii.gz", "dicom_seg": "study_seg.dcm",
                                             "provenance": "study_provenance.json", "qc": "study_qc.png"}
    # the arithmetic used (auto resolved on this machine) is in report.json and in the SEG's standard attributes
    from segkit.inference.acceleration import resolve_precision

    used = resolve_precision("auto", torch.device("cpu"))
    assert report["backend"]["precision"] == used and report["options"]["precision"] == "auto"
    assert seg.ContentDescription.endswith(f"inference precision {used}") and len(seg.ContentDescription) <= 64
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert f"precision={used}" in str(algorithm.AlgorithmParameters)


def test_ten_cases_three_broken_exit_1_with_reasons(tmp_path, model, capsys):
    expected = make_broken_batch(tmp_path / "in")
    out = tmp_path / "out"
    code = predict("-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model), "--channel-map", "0=T1*,1=FLAIR*",
                   "--statistics", *FAST)
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    assert {c["case_id"]: c["status"] for c in report["cases"]} == expected
    assert report["totals"]["ok"] == 7 and report["totals"]["failed"] == 3
    assert report["configuration"] == "3d_fullres" and report["segkit_version"]
    failed = {c["case_id"]: c["reason"] for c in report["cases"] if c["status"] == "failed"}
    assert "truncated" in failed["bad_truncated"] and "channel" in failed["bad_channels"]
    assert "empty folder" in failed["bad_empty"]
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c, s in expected.items() if s == "ok")
    assert "failed bad_empty" in capsys.readouterr().err


def _acceptance_folder(folder: Path) -> list[str]:
    """10 NIfTI cases: 7 good, a truncated gzip, gzip'd text named like an image, an extra channel file."""
    import gzip

    good = [f"case_{i}" for i in (0, 1, 2, 4, 6, 8, 9)]
    for index, case_id in enumerate(good):
        write_file_case(folder, case_id, seed=80 + index)
    write_file_case(folder, "case_3", seed=90)
    truncated = folder / "case_3_0001.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (folder / "case_5_0000.nii.gz").write_bytes(gzip.compress(b"this is not an image\n" * 40))
    (folder / "case_5_0001.nii.gz").write_bytes(gzip.compress(b"neither is this\n" * 40))
    write_file_case(folder, "case_7", seed=91, channels=3)
    return good


def test_plain_folder_run_isolates_broken_cases_and_fail_fast_stops(tmp_path, model, capsys):
    good = _acceptance_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert predict("-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model), *FAST) == 1
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in good)
    report = json.loads((out / "report.json").read_text())
    failed = {c["case_id"]: c["reason"] for c in report["cases"] if c["status"] == "failed"}
    assert set(failed) == {"case_3", "case_5", "case_7"} and report["totals"]["ok"] == 7
    assert "case_3_0001.nii.gz" in failed["case_3"] and "truncated" in failed["case_3"]
    assert "case_5_0000.nii.gz" in failed["case_5"] and "cannot read image" in failed["case_5"]
    assert "wrong channel count" in failed["case_7"] and "[0, 1, 2]" in failed["case_7"]
    assert all("traceback" not in c for c in report["cases"])
    assert "failed case_5" in capsys.readouterr().err

    stopped = tmp_path / "stopped"
    assert predict("-i", str(tmp_path / "in"), "-o", str(stopped), "-m", str(model), "--fail-fast", *FAST) == 2
    assert "case_3_0001.nii.gz" in capsys.readouterr().err
    written = sorted(p.name for p in stopped.glob("*.nii.gz"))
    # case_0..case_2 may be done; nothing after the first failure (case_3) is started beyond the read-ahead
    assert set(written) <= {"case_0.nii.gz", "case_1.nii.gz", "case_2.nii.gz"}
    report = json.loads((stopped / "report.json").read_text())
    assert [c["case_id"] for c in report["cases"] if c["status"] == "failed"] == ["case_3"]
    assert report["totals"]["pending"] > 0


def test_whole_run_user_error_is_exit_2(tmp_path, model):
    write_file_case(tmp_path / "in", "c0", seed=0)
    assert predict("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "nope"),
                   "--continue", *FAST) == 2
    assert predict("-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model),
                   "--num-parts", "2", "--part-id", "5", *FAST) == 2


def _slow_predict_command(argv: list[str]) -> list[str]:
    """python -c running `segkit predict argv` with the network step slowed, so a kill lands mid-run."""
    code = ("import sys, time, segkit.inference.predictor as p\n"
            "slow = p.network_probabilities\n"
            "p.network_probabilities = lambda *a, **k: (time.sleep(0.6), slow(*a, **k))[1]\n"
            "from segkit.cli import main\n"
            f"raise SystemExit(main({['predict', *argv]!r}))\n")
    return [sys.executable, "-c", code]


def _finished(report_path: Path) -> list[str]:
    """Case ids a report on disk lists as finished (tolerates a report not written yet)."""
    try:
        return [c["case_id"] for c in json.loads(report_path.read_text())["cases"]]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return []


@pytest.mark.slow
def test_sigkill_then_continue_finishes_only_the_rest(tmp_path, model):
    inputs = tmp_path / "in"
    for index in range(6):
        write_file_case(inputs, f"case_{index}", seed=30 + index)
    reference = tmp_path / "reference"
    assert predict("-i", str(inputs), "-o", str(reference), "-m", str(model), "--statistics", *FAST) == 0

    out = tmp_path / "out"
    argv = ["-i", str(inputs), "-o", str(out), "-m", str(model), "--statistics", *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(_slow_predict_command(argv), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_finished(out / "report.json")) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reported = _finished(out / "report.json")
    # a case may have been written just before the kill but not yet reported: the files decide
    done = sorted(p.name[: -len(".nii.gz")] for p in out.glob("case_*.nii.gz"))
    assert set(reported) <= set(done) and 2 <= len(done) < 6, f"kill did not land mid-run: {done}"
    mtimes = {case: (out / f"{case}.nii.gz").stat().st_mtime_ns for case in done}
    for label in out.glob("case_*.nii.gz"):  # atomic writes: whatever exists after the kill is complete (temp files are .NAME.*)
        assert read_array(label).shape == read_array(inputs / f"{label.name[:-7]}_0000.nii.gz").shape

    assert predict(*argv, "--continue") == 0
    report = json.loads((out / "report.json").read_text())
    statuses = {c["case_id"]: c["status"] for c in report["cases"]}
    assert {c for c, s in statuses.items() if s == "skipped"} == set(done)
    assert {c for c, s in statuses.items() if s == "ok"} == {f"case_{i}" for i in range(6)} - set(done)
    assert all((out / f"{case}.nii.gz").stat().st_mtime_ns == mtimes[case] for case in done)
    for index in range(6):
        np.testing.assert_array_equal(read_array(out / f"case_{index}.nii.gz"),
                                      read_array(reference / f"case_{index}.nii.gz"))
        assert (json.loads((out / f"case_{index}_stats.json").read_text())
                == json.loads((reference / f"case_{index}_stats.json").read_text()))
    assert (out / "statistics.csv").read_text() == (reference / "statistics.csv").read_text()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_torchrun_ranks_split_the_cases_and_reports_merge(tmp_path, model):
    inputs = tmp_path / "in"
    for index in range(4):
        write_file_case(inputs, f"case_{index}", seed=40 + index)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "segkit",
               "predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "--statistics", *FAST]
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            encoding="utf-8", errors="replace", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    parts = [json.loads((out / f"report_part{k}.json").read_text()) for k in range(2)]
    assert [c["case_id"] for c in parts[0]["cases"]] == ["case_0", "case_2"]
    assert [c["case_id"] for c in parts[1]["cases"]] == ["case_1", "case_3"]
    assert not (out / "report.json").exists()
    from segkit.batch.report import main as report_main
    assert report_main(["merge", str(out)]) == 0
    merged = json.loads((out / "report.json").read_text())
    assert merged["totals"]["ok"] == 4 and merged["part"]["merged_from"] == ["report_part0.json", "report_part1.json"]
    assert len((out / "statistics.csv").read_text().splitlines()) == 1 + 4 * 3


def test_packaged_model_predicts_like_its_folder_and_tampering_is_exit_2(tmp_path, model, monkeypatch, capsys):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    write_file_case(tmp_path / "in", "c0", seed=50)
    package = tmp_path / "model.zip"
    assert main(["export-model", str(model), "-o", str(package)]) == 0
    assert predict("-i", str(tmp_path / "in"), "-o", str(tmp_path / "from_dir"), "-m", str(model), *FAST) == 0
    assert predict("-i", str(tmp_path / "in"), "-o", str(tmp_path / "from_zip"), "-m", str(package), *FAST) == 0
    np.testing.assert_array_equal(read_array(tmp_path / "from_zip" / "c0.nii.gz"),
                                  read_array(tmp_path / "from_dir" / "c0.nii.gz"))
    report = json.loads((tmp_path / "from_zip" / "report.json").read_text())
    from segkit.models.package import sha256_of
    assert report["package_sha256"] == sha256_of(package)
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte inside a member
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(bytes(data))
    capsys.readouterr()
    assert predict("-i", str(tmp_path / "in"), "-o", str(tmp_path / "bad"), "-m", str(tampered), *FAST) == 2
    message = capsys.readouterr().err
    assert "tampered.zip" in message and ("checksum" in message or "corrupt" in message)
    assert not (tmp_path / "bad").exists()


def test_continue_refuses_outputs_of_another_model(tmp_path, model):
    other = make_model_dir(tmp_path / "other_work", num_channels=2, folds=("3",))
    write_file_case(tmp_path / "in", "c0", seed=60)
    argv = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST]
    assert predict(*argv, "-m", str(model), "--batch") == 0
    assert predict(*argv, "-m", str(other), "--continue") == 2
    assert predict(*argv, "-m", str(model), "--continue") == 0
    # bf16 and fp32 label maps of one model can differ: continuing in another precision is refused
    from segkit.inference.acceleration import resolve_precision

    used = resolve_precision("auto", torch.device("cpu"))
    assert predict(*argv, "-m", str(model), "--continue", "--precision", used) == 0
    other = "bf16" if used == "fp32" else "fp32"
    assert predict(*argv, "-m", str(model), "--continue", "--precision", other) == 2
    nested = tmp_path / "in" / "results"
    for flag in ("--batch", "--continue"):  # the second run finds the results folder inside the input
        assert predict("-i", str(tmp_path / "in"), "-o", str(nested), "-m", str(model), flag, *FAST) == 0
        assert [c["case_id"] for c in json.loads((nested / "report.json").read_text())["cases"]] == ["c0"]


def test_rank_device_keeps_an_explicit_cpu():
    from segkit.batch.sharding import rank_device

    assert rank_device("cpu", {"LOCAL_RANK": "1"}) == "cpu"


def test_packaged_postprocessing_is_applied(tmp_path, monkeypatch):
    from segkit.models.postprocessing import apply_postprocessing

    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    model_dir = make_model_dir(work, num_channels=2)
    decision = {"foreground_lcc": True, "lcc_classes": {"necrosis": [1]}}
    (work / "find_best.json").write_text(json.dumps({"best": {"members": ["3d_fullres"]}, "postprocessing": decision}))
    assert main(["export-model", str(model_dir), "-o", str(tmp_path / "model.zip")]) == 0
    for index in range(2):
        write_file_case(tmp_path / "in", f"c{index}", seed=70 + index)
    argv = ["-i", str(tmp_path / "in"), *FAST]
    assert predict(*argv, "-o", str(tmp_path / "raw"), "-m", str(model_dir), "--no-postprocess") == 0
    assert predict(*argv, "-o", str(tmp_path / "folder"), "-m", str(model_dir)) == 0   # find-best's decision here too
    assert predict(*argv, "-o", str(tmp_path / "packaged"), "-m", str(tmp_path / "model.zip")) == 0
    assert json.loads((tmp_path / "packaged" / "report.json").read_text())["postprocessing"] == decision
    changed = False
    for index in range(2):
        raw = read_array(tmp_path / "raw" / f"c{index}.nii.gz")
        expected = apply_postprocessing(raw, decision)
        np.testing.assert_array_equal(read_array(tmp_path / "packaged" / f"c{index}.nii.gz"), expected)
        np.testing.assert_array_equal(read_array(tmp_path / "folder" / f"c{index}.nii.gz"), expected)
        changed |= not np.array_equal(raw, expected)
    assert predict(*argv, "-o", str(tmp_path / "off"), "-m", str(tmp_path / "model.zip"), "--no-postprocess") == 0
    np.testing.assert_array_equal(read_array(tmp_path / "off" / "c0.nii.gz"), read_array(tmp_path / "raw" / "c0.nii.gz"))
    assert changed, "the untrained network's necrosis should have several components somewhere"


def test_a_pacs_export_with_sr_ko_presentation_state_copies_and_multiframe_is_segmented(tmp_path, capsys):
    """What a PACS feed holds: non-image objects beside the images, a slice sent twice, a multi-frame image."""
    import shutil

    from batch_data import phantom
    from dicom_data import write_multiframe, write_non_image_objects

    from segkit.io.dicom_write import write_dicom_series

    model = make_model_dir(tmp_path / "work", num_channels=1)
    images, _, geometry = phantom(seed=4, channels=1)
    inputs = tmp_path / "in"
    slices = write_dicom_series(images[0], geometry, inputs / "with_objects", "T1")
    write_non_image_objects(inputs / "with_objects", slices)
    shutil.copy(slices[3], inputs / "with_objects" / "resent.dcm")
    single = write_dicom_series(images[0], geometry, tmp_path / "single", "T1")
    write_multiframe(inputs / "multiframe", single, enhanced=True)
    out = tmp_path / "out"
    assert predict("-i", str(inputs), "-o", str(out), "-m", str(model), "--dicom-seg", *FAST) == 0
    assert "Traceback" not in capsys.readouterr().err
    report = {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}
    assert {c["status"] for c in report.values()} == {"ok"}
    notes = report["with_objects"]["notes"]
    assert any("ignored 3 non-image DICOM object(s)" in n for n in notes)
    assert any("resent.dcm" in n and "exact duplicate" in n for n in notes)
    assert any("multi-frame" in n for n in report["multiframe"]["notes"])
    labels = {case: read_array(out / f"{case}.nii.gz") for case in report}
    np.testing.assert_array_equal(labels["with_objects"], labels["multiframe"])   # the same pixels either way
    for case in report:
        assert pydicom.dcmread(out / f"{case}_seg.dcm").Modality == "SEG"

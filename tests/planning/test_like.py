"""`segkit plan DATASET --like SOURCE`: adopted network and patch, re-planned outputs/batch/memory, channel matching."""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import pytest

from segkit.cli import main
from segkit.errors import UserError
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.planning.like import plan_like_and_write
from segkit.planning.memory import estimate_peak_bytes

SOURCE_SPEC = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5))
TARGET_SPEC = PhantomSpec(shape=(24, 40, 36), spacing=(2.0, 1.0, 1.0))   # another median shape and spacing


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def source_work(tmp_path_factory) -> Path:
    """A planned 4-channel phantom (FLAIR, T1, T1ce, T2; necrosis, edema, enhancing)."""
    root = tmp_path_factory.mktemp("like_source")
    dataset = generate_dataset(root / "Source", num_cases=3, spec=SOURCE_SPEC)
    assert main(["plan", str(dataset), "--work-dir", str(root / "work"), "--configurations", "3d_fullres", "2d",
                 "--no-tradeoff"]) == 0
    return root / "work"


def _target(root: Path, channels: dict[str, str] | None = None, labels: dict | None = None) -> Path:
    """A phantom of another shape; optionally only some channels (renamed) and other labels."""
    dataset = generate_dataset(root / "Target", num_cases=3, spec=TARGET_SPEC, seed=5)
    meta = json.loads((dataset / "dataset.json").read_text())
    if channels is not None:   # keep the listed source channel indices, renamed, as channels 0..n-1
        for image in sorted((dataset / "imagesTr").glob("*.nii.gz")):
            case, index = image.name[:-len("_0000.nii.gz")], int(image.name[-11:-7])
            kept = list(channels)
            if str(index) in kept:
                image.rename(image.with_name(f"{case}_{kept.index(str(index)):04d}.tmp.nii.gz"))
            else:
                image.unlink()
        for image in (dataset / "imagesTr").glob("*.tmp.nii.gz"):
            image.rename(image.with_name(image.name.replace(".tmp", "")))
        meta["channel_names"] = {str(i): name for i, name in enumerate(channels.values())}
    if labels is not None:
        meta["labels"] = labels
        meta["regions_class_order"] = [1]
    (dataset / "dataset.json").write_text(json.dumps(meta))
    return dataset


def test_like_keeps_network_and_patch_and_rechecks_memory(source_work, tmp_path):
    source = json.loads((source_work / "plans.json").read_text())
    dataset = _target(tmp_path, labels={"background": 0, "tumour": [1, 2, 3]})   # one region instead of 3 classes
    plans, work, summary = plan_like_and_write(dataset, str(source_work), work_dir=tmp_path / "work",
                                               configurations=("3d_fullres", "2d"))
    assert json.loads((work / "plans.json").read_text()) == plans
    assert plans["num_outputs"] == 1 and plans["outputs"] == {"tumour": [1, 2, 3]} and plans["label_mode"] == "sigmoid"
    assert set(plans["configurations"]) == {"3d_fullres", "2d"}
    for name, entry in plans["configurations"].items():
        theirs = source["configurations"][name]
        for key in ("architecture", "patch_size", "target_spacing"):
            assert entry[key] == theirs[key], f"{name}: {key} adopted"
        assert entry["median_shape"] != theirs["median_shape"], "the new data's median shape at the adopted spacing"
        memory = entry["memory"]
        expected = estimate_peak_bytes(entry["architecture"], entry["patch_size"], entry["batch_size"], 4, 1)
        assert memory["predicted_peak_bytes"] == expected["total"] <= memory["budget_bytes"]
        assert memory["predicted_peak_bytes"] != theirs["memory"]["predicted_peak_bytes"], "re-priced for 1 output"
        bigger = estimate_peak_bytes(entry["architecture"], entry["patch_size"], entry["batch_size"] + 1, 4, 1)
        cap = max(2, int(0.05 * 3 * math.prod(entry["median_shape"]) / math.prod(entry["patch_size"])))
        assert bigger["total"] > memory["budget_bytes"] or entry["batch_size"] == cap, "largest batch within budget and cap"
    like = plans["like"]
    assert like["source"] == f"work dir {source_work}" and like["source_dataset"] == source["dataset_name"]
    assert like["channel_map"][1] == "T1 <- T1 (zscore)" and "planned like" in summary


def test_like_refuses_a_network_over_the_budget(source_work, tmp_path, capsys):
    dataset = _target(tmp_path)
    assert main(["plan", str(dataset), "--work-dir", str(tmp_path / "work"), "--like", str(source_work),
                 "--gpu-memory", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "over the budget" in err and "raise --gpu-memory" in err
    assert not (tmp_path / "work" / "plans.json").exists()


def test_like_matches_channels_by_name_or_refuses(source_work, tmp_path):
    one = _target(tmp_path / "a", channels={"1": "t1"})                    # the T1 channel alone, lower case
    plans, _, _ = plan_like_and_write(one, str(source_work / "plans.json"), work_dir=tmp_path / "a" / "work",
                                      configurations=("3d_fullres",))
    source = json.loads((source_work / "plans.json").read_text())
    assert plans["normalization"] == [source["normalization"][1]] and plans["channel_names"] == ["t1"]
    other = _target(tmp_path / "b", channels={"0": "PD"})                  # no such name, same scheme (z-score)
    plans, _, _ = plan_like_and_write(other, str(source_work), work_dir=tmp_path / "b" / "work",
                                      configurations=("3d_fullres",))
    assert "PD: no source channel of that name" in plans["like"]["channel_map"][0]
    ct = _target(tmp_path / "c", channels={"0": "CT"})                      # CT normalisation: nothing to match
    with pytest.raises(UserError, match="channel 'CT' \\(ct normalisation\\) cannot be matched"):
        plan_like_and_write(ct, str(source_work), work_dir=tmp_path / "c" / "work", configurations=("3d_fullres",))


def test_like_a_model_package_verifies_it_first(source_work, tmp_path, capsys):
    model_dir = tmp_path / "trained" / "models" / "3d_fullres"
    model_dir.mkdir(parents=True)
    shutil.copy(source_work / "plans.json", model_dir / "plans.json")
    from inference_fixtures import (
        make_model_dir,  # a fold checkpoint for the package (weights are not read here)
    )

    fixture = make_model_dir(tmp_path / "fixture")
    shutil.copytree(fixture / "fold_0", model_dir / "fold_0")
    package = tmp_path / "model.zip"
    assert main(["export-model", str(model_dir), "-o", str(package)]) == 0
    dataset = _target(tmp_path / "t")
    plans, _, _ = plan_like_and_write(dataset, str(package), work_dir=tmp_path / "t" / "work")
    assert list(plans["configurations"]) == ["3d_fullres"] and "checksums verified" in plans["like"]["source"]
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as old, zipfile.ZipFile(tampered, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            new.writestr(info.filename, data.replace(b'"patch_size"', b'"patch_size" ') if info.filename.endswith("plans.json")
                         else data)
    capsys.readouterr()
    assert main(["plan", str(dataset), "--work-dir", str(tmp_path / "t2"), "--like", str(tampered)]) == 2
    assert "checksum mismatch for" in capsys.readouterr().err
    assert not (tmp_path / "t2" / "plans.json").exists()


# fields of plans.json that only say how the plan was made, not how to train or predict
PLANNING_ONLY = {"growth_limits", "like"}


def _lateral_sparse(root: Path, codes: list[str]) -> Path:
    """The left/right blob dataset stored as `codes`, with an 'ignore' label (nnU-Net sparse annotation)."""
    from orientation_data import LABELS, write_lateral_dataset

    dataset = write_lateral_dataset(root, codes, num_cases=3)
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["labels"] = dict(LABELS) | {"ignore": 3}
    (dataset / "dataset.json").write_text(json.dumps(meta))
    return dataset


def _assert_same_plan_fields(fresh: dict, like: dict) -> None:
    """Every field that affects training or prediction is the same in the two plans."""
    for key in sorted((set(fresh) | set(like)) - PLANNING_ONLY - {"configurations"}):
        assert like.get(key, "<missing>") == fresh.get(key, "<missing>"), f"plans[{key!r}] differs"
    for name, entry in like["configurations"].items():
        for key in sorted(set(fresh["configurations"][name]) | set(entry)):
            assert entry.get(key, "<missing>") == fresh["configurations"][name].get(key, "<missing>"), \
                f"configurations[{name!r}][{key!r}] differs"


def test_like_itself_keeps_every_field_that_affects_training_or_prediction(tmp_path):
    """#24 items 1-2: planning a dataset like its own plan gives the same plan (orientation, ignore label, mirroring)."""
    dataset = _lateral_sparse(tmp_path / "Lateral", ["RAS"])
    fresh, work, _ = plan_and_write_cli(dataset, tmp_path / "fresh")
    assert fresh["canonical_orientation"] == "LPS" and fresh["ignore_label"] == 3
    # Left/Right-Blob are a pair: left/right is mirrored with the pair swapped (#27)
    assert fresh["mirror_pairs"] == [[1, 2]]
    assert all("mirror_swap_axis" in e for e in fresh["configurations"].values())
    like, _, _ = plan_like_and_write(dataset, str(work), work_dir=tmp_path / "like",
                                     configurations=tuple(fresh["configurations"]))
    assert set(like["configurations"]) == set(fresh["configurations"])
    _assert_same_plan_fields(fresh, like)


def test_like_from_another_dataset_takes_the_data_fields_of_the_new_one(tmp_path):
    """Source stored LPS without ignore label; target stored RAS with one: the target's orientation/labels/mirroring."""
    source_dataset = write_lateral_source(tmp_path / "Source")
    _, source_work, _ = plan_and_write_cli(source_dataset, tmp_path / "source_work")
    target = _lateral_sparse(tmp_path / "Target", ["RAS"])
    fresh, _, _ = plan_and_write_cli(target, tmp_path / "fresh")
    like, _, _ = plan_like_and_write(target, str(source_work), work_dir=tmp_path / "like",
                                     configurations=tuple(fresh["configurations"]))
    for key in ("canonical_orientation", "training_orientations", "ignore_label", "labels", "outputs", "label_mode",
                "regions_class_order", "num_outputs", "channel_names", "num_channels", "mirror_pairs"):
        assert like.get(key, "<missing>") == fresh[key], key
    for name, entry in like["configurations"].items():
        assert entry["mirror_axes"] == fresh["configurations"][name]["mirror_axes"], name
        assert entry.get("mirror_note") == fresh["configurations"][name].get("mirror_note"), name
        assert entry.get("mirror_swap_axis") == fresh["configurations"][name].get("mirror_swap_axis"), name


def write_lateral_source(root: Path) -> Path:
    """The same kind of data stored LPS, without an ignore label."""
    from orientation_data import write_lateral_dataset

    return write_lateral_dataset(root, ["LPS"], num_cases=3)


def plan_and_write_cli(dataset: Path, work: Path) -> tuple[dict, Path, str]:
    """`segkit plan` as the CLI runs it on a CPU (3d_fullres and 2d)."""
    from segkit.planning.run import plan_and_write

    return plan_and_write(dataset, work_dir=work, configurations=("3d_fullres", "2d"), tradeoff=False)

"""Default work folders (#24 item 3): never inside $nnUNet_raw / $SEGKIT_RAW, and `-d ID` finds only raw datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from segkit.cli import main
from segkit.cli.datasets import resolve_dataset
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.workdir import dataset_of_work_dir, default_work_dir

TINY = PhantomSpec(shape=(12, 16, 16), spacing=(2.0, 1.5, 1.5))


@pytest.fixture
def raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$nnUNet_raw holding Dataset004_Hippocampus; SEGKIT_RAW and SEGKIT_WORK unset."""
    for name in ("SEGKIT_RAW", "SEGKIT_WORK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "nnUNet_raw"
    generate_dataset(root / "Dataset004_Hippocampus", num_cases=2, spec=TINY)
    monkeypatch.setenv("nnUNet_raw", str(root))
    return root


def test_default_work_dir_is_beside_the_raw_root_not_in_it(raw: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = raw / "Dataset004_Hippocampus"
    assert default_work_dir(dataset) == tmp_path.resolve() / "segkit_work" / "Dataset004_Hippocampus"
    assert dataset_of_work_dir(default_work_dir(dataset)) == dataset.resolve()
    outside = generate_dataset(tmp_path / "mine" / "Liver", num_cases=1, spec=TINY)
    assert default_work_dir(outside) == outside.resolve().parent / "Liver_segkit"       # not in a raw root
    assert dataset_of_work_dir(default_work_dir(outside)) == outside.resolve()
    monkeypatch.setenv("SEGKIT_WORK", str(tmp_path / "w"))
    assert default_work_dir(dataset) == tmp_path / "w" / "Dataset004_Hippocampus"


def test_plan_by_id_twice_leaves_the_raw_folder_alone(raw: Path, tmp_path: Path) -> None:
    """The newcomer's walk: `plan -d 4`, then `preprocess -d 4` must not find two datasets."""
    before = sorted(p.name for p in raw.iterdir())
    assert main(["plan", "-d", "4", "--configurations", "3d_fullres", "--no-tradeoff"]) == 0
    assert sorted(p.name for p in raw.iterdir()) == before, "nothing new in $nnUNet_raw"
    work = tmp_path / "segkit_work" / "Dataset004_Hippocampus"
    assert (work / "plans.json").is_file()
    assert main(["preprocess", "-d", "4", "--configurations", "3d_fullres"]) == 0
    assert any((work / "preprocessed" / "3d_fullres").iterdir())


def test_dataset_id_never_resolves_to_a_work_folder(raw: Path) -> None:
    """A `Dataset004_Hippocampus_segkit` an earlier segkit wrote into the raw root is not a second match."""
    legacy = raw / "Dataset004_Hippocampus_segkit"
    (legacy / "models").mkdir(parents=True)
    (legacy / "plans.json").write_text("{}")
    assert Path(resolve_dataset(None, "4")).name == "Dataset004_Hippocampus"
    assert Path(resolve_dataset("Dataset004_Hippocampus", None)).name == "Dataset004_Hippocampus"
    # that earlier work folder keeps being used (its trained models are not orphaned)
    assert default_work_dir(raw / "Dataset004_Hippocampus") == legacy.resolve()

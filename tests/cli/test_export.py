"""`segkit export --format brats|msd`: the summary names what was written and where; a usage error is exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segkit.cli import main
from segkit.phantom import PhantomSpec, generate_dataset

SPEC = PhantomSpec(shape=(8, 12, 12))


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """An MSD phantom (2 training cases) converted by `segkit convert` (read-only)."""
    root = tmp_path_factory.mktemp("export")
    source = generate_dataset(root / "Task01_BrainTumour", num_cases=2, layout="msd", spec=SPEC)
    assert main(["convert", str(source), str(root / "raw")]) == 0
    return root / "raw"


def _predictions(raw: Path, out: Path) -> list[str]:
    """The converted training labels, as a prediction folder would hold them."""
    shutil.copytree(raw / "labelsTr", out)
    return sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize("task, folder", [([], "Task01_BrainTumour"), (["--task", "Task99_Mine"], "Task99_Mine")])
def test_the_summary_names_the_case_count_and_the_task_folder(raw, tmp_path, capsys, task, folder):
    names = _predictions(raw, tmp_path / "pred")
    out = tmp_path / "export"
    capsys.readouterr()
    assert main(["export", "--format", "msd", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(raw),
                 *task]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"exported {len(names)} case(s) in msd format into {out / folder}"
    assert sorted(p.name for p in (out / folder).iterdir()) == names


def test_an_unknown_format_is_a_usage_error(raw, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--format", "kits", "-i", str(tmp_path), "-o", str(tmp_path / "x"), "--dataset", str(raw)])
    assert exit_info.value.code == 2 and "invalid choice: 'kits'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

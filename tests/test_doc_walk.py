"""The newcomer's walk as a test (#24): the commands of docs/tutorial-msd.md, docs/own-dataset.md and
docs/coming-from-nnunet.md, taken from the markdown exactly as printed, run on tiny generated data.

What the harness changes, and nothing else:
- `~` and `$HOME` point into the test's folder, so `~/downloads/Task04_Hippocampus` is a fake MSD
  task made here, and `$nnUNet_raw` / `$SEGKIT_RAW` are folders made here;
- `segkit train` runs 1 epoch of 2 steps (its `--time-budget` dropped; `--resume` asks for one more
  epoch), and a fold the walk already trained is only parsed (the tutorial shows a GPU and a CPU
  variant of the same loop);
- commands are run in-process (`segkit.cli.main`), `python -m zipfile` as a subprocess.
A doc whose command no longer parses or fails (exit code other than 0) fails here, and every
segkit command of the three pages, placeholders included, must at least parse.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import build_parser, main
from segkit.io.image import write_image
from segkit.phantom import PhantomSpec, generate_dataset, make_case

DOCS = Path(__file__).resolve().parents[1] / "docs"
TINY = PhantomSpec(shape=(12, 16, 16), spacing=(2.0, 1.5, 1.5))
SHORT_TRAINING = ["--epochs", "1", "--iterations-per-epoch", "2", "--num-workers", "0"]
FOR_LOOP = re.compile(r"^for (\w+) in ([^;]+); do (.+); done$")
ASSIGNMENT = re.compile(r"^(?:export )?(\w+)=(\S+)$")
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def code_blocks(page: str, language: str = "bash") -> list[str]:
    """The fenced ```bash blocks of a docs page, in order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def table_commands(page: str) -> list[str]:
    """segkit commands printed in a markdown table's cells (`segkit ...` in backticks)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    cells = [cell.strip() for line in text.splitlines() if line.startswith("|") for cell in line.split("|")]
    return [match for cell in cells for match in re.findall(r"`(segkit [^`]+)`", cell)]


def shell_lines(block: str) -> Iterator[str]:
    """The block's commands: comments stripped, `for` loops unrolled, `&&` chains split."""
    for raw in block.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        loop = FOR_LOOP.match(line)
        bodies = ([loop.group(3).replace(f"${loop.group(1)}", value) for value in loop.group(2).split()]
                  if loop else [line])
        for body in bodies:
            yield from (part.strip() for part in body.split("&&"))


class Walk:
    """Runs documented lines in order: variables, segkit commands in-process, python -m as a subprocess."""

    def __init__(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
        self.env = env
        self.monkeypatch = monkeypatch
        self.trained: set[tuple[str, str, str]] = set()
        self.ran: list[str] = []

    def expand(self, text: str) -> str:
        """$VAR, ${VAR} and a leading ~ as the shell would, from the walk's environment."""
        text = VARIABLE.sub(lambda m: self.env[m.group(1) or m.group(2)], text)
        return re.sub(r"(^|\s)~/", lambda m: m.group(1) + self.env["HOME"] + "/", text)

    def run(self, line: str) -> None:
        """One documented command."""
        assignment = ASSIGNMENT.match(line)
        if assignment:
            self.env[assignment.group(1)] = self.expand(assignment.group(2))
            self.monkeypatch.setenv(assignment.group(1), self.env[assignment.group(1)])
            return
        argv = shlex.split(self.expand(line))
        if argv[0] == "python":
            subprocess.run([sys.executable, *argv[1:]], check=True, cwd=self.env["PWD"])
        elif argv[0] == "segkit":
            self.segkit(argv[1:], line)
        else:
            raise AssertionError(f"the walk does not know how to run {line!r}")
        self.ran.append(line)

    def segkit(self, argv: list[str], line: str) -> None:
        """A segkit command, with training shortened (see the module docstring)."""
        if argv[0] == "train":
            args = build_parser().parse_args(argv)
            key = (str(args.dataset or args.dataset_id), args.configuration, args.fold)
            if key in self.trained and not args.resume:
                return                                   # the same fold again (the doc's CPU variant): parsed only
            self.trained.add(key)
            if "--time-budget" in argv:
                index = argv.index("--time-budget")
                argv = argv[:index] + argv[index + 2:]
            argv = argv + (["--epochs", "2", "--iterations-per-epoch", "2"] if args.resume else SHORT_TRAINING)
        assert main(argv) == 0, f"documented command failed: {line}"


@pytest.fixture
def walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Walk:
    """HOME, the working directory and the raw variables inside the test folder."""
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    cwd.mkdir(parents=True)
    for name in ("SEGKIT_RAW", "SEGKIT_WORK", "nnUNet_raw"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(cwd)
    return Walk({"HOME": str(home), "PWD": str(cwd)}, monkeypatch)


def msd_task(folder: Path, num_cases: int = 6, num_test: int = 2) -> Path:
    """A fake Task04_Hippocampus: the phantom in the MSD layout (4D images, `modality`, `training`)."""
    generate_dataset(folder, num_cases=num_cases, layout="msd", spec=TINY, num_test=num_test)
    return folder


@pytest.mark.slow
def test_tutorial_msd_runs_as_printed(walk: Walk) -> None:
    msd_task(Path(walk.env["HOME"]) / "downloads" / "Task04_Hippocampus")
    for block in code_blocks("tutorial-msd.md"):
        for line in shell_lines(block):
            walk.run(line)
    raw = Path(walk.env["SEGKIT_RAW"])
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset004_Hippocampus"], "nothing else in the raw folder"
    work = Path(walk.env["HOME"]) / "segkit_work" / "Dataset004_Hippocampus"
    assert json.loads((work / "find_best.json").read_text())["best"]["members"]
    submission = Path(walk.env["PWD"]) / "submission" / "Task04_Hippocampus"
    assert len(list(submission.glob("*.nii.gz"))) == 2
    assert (Path(walk.env["PWD"]) / "Task04_Hippocampus.zip").stat().st_size > 0
    assert any(line.startswith("segkit evaluate") for line in walk.ran)


def write_documented_dataset(root: Path, dataset_json: dict, num_cases: int = 5) -> None:
    """The own-dataset guide's Dataset042_Liver: one CT channel, labels from the guide's dataset.json."""
    for index in range(num_cases):
        images, label, geometry = make_case(index, TINY)
        case = f"liver_{index + 1:03d}"
        write_image(images[0] * 100.0, geometry, root / "imagesTr" / f"{case}_0000.nii.gz")
        write_image(np.minimum(label, 2).astype(np.uint8), geometry, root / "labelsTr" / f"{case}.nii.gz")
    (root / "dataset.json").write_text(json.dumps(dataset_json | {"numTraining": num_cases}))


@pytest.mark.slow
def test_own_dataset_runs_as_printed(walk: Walk, tmp_path: Path) -> None:
    dataset_json = json.loads(code_blocks("own-dataset.md", "json")[0])
    raw = tmp_path / "nnUNet_raw"
    write_documented_dataset(raw / "Dataset042_Liver", dataset_json)
    walk.run(f"export nnUNet_raw={raw}")
    lines = [line for block in code_blocks("own-dataset.md") for line in shell_lines(block)]
    assert [line.split()[1] for line in lines] == ["verify", "plan", "preprocess", "train"]
    for line in lines:
        walk.run(line)
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset042_Liver"]
    fold = tmp_path / "segkit_work" / "Dataset042_Liver" / "models" / "3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pt").is_file()


@pytest.mark.slow
def test_coming_from_nnunet_dataset_id_chain_runs_as_printed(walk: Walk, tmp_path: Path) -> None:
    """The table's commands on `-d 1` (verify && plan && preprocess, train, resume) on an nnU-Net raw dataset."""
    raw = tmp_path / "nnUNet_raw"
    generate_dataset(raw / "Dataset001_BrainTumour", num_cases=5, spec=TINY)
    walk.run(f"export nnUNet_raw={raw}")
    chain = [c for c in table_commands("coming-from-nnunet.md") if re.search(r"-d 1\b", c) and "--network" not in c]
    assert chain[0].startswith("segkit verify -d 1 && segkit plan -d 1 && segkit preprocess -d 1")
    for command in chain:
        for line in shell_lines(command):
            walk.run(line)
    assert ("1", "3d_fullres", "0") in walk.trained
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset001_BrainTumour"]


@pytest.mark.parametrize("page", ["tutorial-msd.md", "own-dataset.md", "coming-from-nnunet.md"])
def test_every_documented_segkit_command_parses(page: str) -> None:
    """Fast drift check: each segkit command the page prints (placeholders as printed) is accepted by the parser."""
    lines = [line for block in code_blocks(page) for line in shell_lines(block)]
    lines += [line for command in table_commands(page) for line in shell_lines(command)]
    commands = [line for line in lines if line.startswith("segkit ")]
    assert commands, f"no segkit command found in {page}"
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"docs/{page}: `{command}` is refused by the parser")

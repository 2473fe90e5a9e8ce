"""`segkit demo`: the whole pipeline on a generated multi-modal phantom, in a few CPU minutes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from segkit.errors import UserError
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.workdir import model_dir

DEMO_SPEC = PhantomSpec(shape=(32, 48, 48), spacing=(3.0, 1.2, 1.2))
MARKER = ".segkit-demo"


def prepare_output(out: Path) -> None:
    """Create the demo folder; clear it only if an earlier demo made it."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UserError("folder exists and was not made by `segkit demo`; choose another --out", out)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by segkit demo\n")


def pipeline_steps(dataset: Path, work: Path, out: Path, minutes: float, network: str, workers: int) -> list[tuple[str, list[str]]]:
    """The CLI calls the demo makes, in order, with a title each."""
    model = model_dir(work, "3d_fullres")
    return [
        ("plan", ["plan", str(dataset), "--work-dir", str(work), "--configurations", "3d_fullres",
                  "--network", network, "-j", str(workers)]),
        ("preprocess", ["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-j", str(workers)]),
        ("train", ["train", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "-f", "0",
                   "--time-budget", f"{minutes:g}"]),
        ("predict", ["predict", "-i", str(dataset / "imagesTs"), "-o", str(out / "predictions"), "-m", str(model),
                     "-f", "0", "--preview", "--statistics"]),
        ("evaluate", ["evaluate", str(out / "predictions"), str(dataset / "labelsTs"), "--regions-from", str(dataset),
                      "-o", str(out / "evaluation" / "summary.json")]),
    ]


def dice_table(summary: dict) -> str:
    """Per-class mean Dice from an evaluation summary as a small text table."""
    means = summary.get("mean", {})
    rows = [(name, values.get("dice")) for name, values in means.items() if isinstance(values, dict)]
    width = max([len(name) for name, _ in rows] + [5])
    lines = [f"  {'class'.ljust(width)}  Dice", f"  {'-' * width}  ------"]
    lines += [f"  {name.ljust(width)}  {dice:.3f}" for name, dice in rows if dice is not None]
    return "\n".join(lines)


def run_demo(out: Path, minutes: float = 3.0, num_cases: int = 10, num_test: int = 3, network: str = "auto",
             workers: int = 2, seed: int = 0) -> Path:
    """Generate the phantom, plan, preprocess, train, predict, evaluate; return the summary path."""
    from segkit.cli import main

    out = out.resolve()
    prepare_output(out)
    started = time.time()
    dataset = out / "Phantom"
    print(f"[demo] generating {num_cases} training + {num_test} test phantom cases in {dataset}")
    generate_dataset(dataset, num_cases, seed=seed, spec=DEMO_SPEC, num_test=num_test, test_labels=True)
    for title, argv in pipeline_steps(dataset, out / "work", out, minutes, network, workers):
        print(f"\n[demo] segkit {' '.join(argv)}", flush=True)
        if main(argv) != 0:
            raise UserError(f"demo step '{title}' failed (see the message above)")
    summary_path = out / "evaluation" / "summary.json"
    summary = json.loads(summary_path.read_text())
    print(f"\n[demo] held-out Dice on {num_test} phantom cases:\n{dice_table(summary)}")
    previews = sorted((out / "predictions").glob("**/*.png"))
    if previews:
        print(f"[demo] QC picture: {previews[0]}")
    print(f"[demo] done in {(time.time() - started) / 60:.1f} min; everything is under {out}")
    return summary_path

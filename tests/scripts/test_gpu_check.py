"""scripts/gpu_check.py: refuses without CUDA; its markdown block replaces only the marked part of the docs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from script_loading import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.py"


def _module():
    return load_script("gpu_check")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_refuses_without_cuda_unless_dry_run(monkeypatch, capsys):
    # the script as a command once (its __main__ exit code); the --device cpu refusal through main() in this
    # process (the same code after the imports, without a second start-up of torch and segkit: ~3 s)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "--dry-run" in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--device", "cpu"])
    assert _module().main() == 2
    err = capsys.readouterr().err
    assert "--dry-run" in err and "smoke test" in err


def test_results_block_replaces_only_the_marked_section(tmp_path):
    gpu_check = _module()
    features = {"parameters": 4 << 20, "optimizer": 4 << 20, "step": 100 << 20}
    report = {
        "environment": {"date": "2026-01-01 00:00 UTC", "device_name": "Test GPU", "torch": "2.x", "cuda": "12.x",
                        "command": "python scripts/gpu_check.py", "json": "docs/benchmarks/gpu_check.json"},
        "total_seconds": 420.0,
        "memory": {"rows": [{"family": "unet", "patch_size": [64, 64, 64], "batch_size": 2, "precision": "bf16",
                             "cudnn_benchmark": False, "features": features, "measured_step": 90 << 20,
                             "measured_reserved_total": 120 << 20, "predicted_step": 95 << 20, "error": 0.056,
                             "held_out": True},
                            {"family": "resenc", "patch_size": [128] * 3, "batch_size": 4, "precision": "fp16",
                             "cudnn_benchmark": True, "out_of_memory": True}],
                   "calibration": {"groups": {"bf16/benchmark_off": {"activation_factor": 0.6}},
                                   "allocator": {"reserved_factor": 1.1}},
                   "held_out_patch": [64, 64, 64], "held_out_max_abs_error": 0.056, "held_out_points": 1},
        "largest_patch": {"budget_bytes": 8 << 30, "reversible": {"largest_measured_patch": [160] * 3},
                          "plain": {"largest_measured_patch": [96] * 3}, "reversible_over_plain_voxels": 4.63},
        "speed": {"baseline_precision": "bf16", "patch_size": [128] * 3, "batch_size": 2,
                  "variants": {"baseline": {"seconds_per_step": 0.2, "ratio_to_baseline": 1.0},
                               "compile_network": {"error": "BackendCompilerFailed: x"}}},
        "nnunet": {"skipped": "nnunetv2 not importable here"}}
    block = gpu_check.markdown(report)
    assert "max |predicted/measured - 1| = 0.056" in block and "**4.63x** the voxels" in block
    assert "| resenc | [128, 128, 128] | 4 | fp16 | True | OOM |" in block and "BackendCompilerFailed" in block
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# B\n\nbefore\n{gpu_check.MARK_START}\nold\n{gpu_check.MARK_END}\n\nafter\n")
    gpu_check.write_docs(docs, block)
    text = docs.read_text(encoding="utf-8")
    assert text.startswith("# B\n\nbefore\n") and text.endswith("\n\nafter\n") and "old" not in text
    assert block in text
    real = (REPO / "docs" / "benchmarks" / "gpu-readiness.md").read_text(encoding="utf-8")
    assert gpu_check.MARK_START in real and gpu_check.MARK_END in real

"""`segkit demo`: its options reach the demo run, and a folder it did not make is refused (the full run is the
README's first command, timed in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

from segkit.cli import main


def test_the_options_reach_the_demo_run(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("segkit.cli.demo_run.run_demo", lambda out, **kwargs: calls.append((out, kwargs)))
    assert main(["demo", "--out", str(tmp_path / "d"), "--minutes", "0.5", "--cases", "3", "--network", "unet",
                 "-j", "1", "--seed", "4"]) == 0
    assert calls == [(tmp_path / "d", {"minutes": 0.5, "num_cases": 3, "network": "unet", "workers": 1, "seed": 4})]
    calls.clear()
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    assert calls == [(Path("segkit_demo"), {"minutes": 3.0, "num_cases": 10, "network": "auto", "workers": 2,
                                            "seed": 0})]


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "Traceback" not in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"

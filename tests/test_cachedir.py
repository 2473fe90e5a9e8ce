"""The per-user cache folder: $SEGKIT_CACHE, else $XDG_CACHE_HOME/segkit, else ~/.cache/segkit."""

from __future__ import annotations

from pathlib import Path

from segkit.cachedir import cache_root


def test_cache_root_follows_segkit_cache_then_xdg_then_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEGKIT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "segkit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "segkit"
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "mine"))
    assert cache_root() == Path(tmp_path / "mine")
    monkeypatch.setenv("SEGKIT_CACHE", "")            # empty means unset, as in the shell
    assert cache_root() == tmp_path / "xdg" / "segkit"

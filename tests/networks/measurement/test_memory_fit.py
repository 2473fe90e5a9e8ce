"""Measured memory fits: the straight line, the cache file (format, one measurement per key), bad files."""

from __future__ import annotations

import json

import pytest

from segkit.errors import UserError
from segkit.networks.measurement.memory_fit import FORMAT, cached_fit, fit_line, read_fits


def test_fit_line_recovers_a_line() -> None:
    """Two or more points on bytes = a + b x voxels give a and b back."""
    a, b = fit_line([(1000.0, 5e6 + 3e3 * 1000), (8000.0, 5e6 + 3e3 * 8000), (27000.0, 5e6 + 3e3 * 27000)])
    assert a == pytest.approx(5e6) and b == pytest.approx(3e3)
    with pytest.raises(ValueError):
        fit_line([(1000.0, 1.0), (1000.0, 2.0)])


def test_cached_fit_measures_once_per_key(tmp_path) -> None:
    """The first call measures every calibration patch and writes the cache; the next reads it back."""
    path = tmp_path / "fits.json"
    calls = []

    def measure(patch, batch):
        calls.append((tuple(patch), batch))
        return 1_000_000 + 100 * batch * patch[0] * patch[1] * patch[2]

    first = cached_fit({"family": "x", "size": 12}, measure, [[8, 8, 8], [16, 16, 16]], path=path)
    assert calls == [((8, 8, 8), 1), ((16, 16, 16), 1)]
    assert first["constant_bytes"] == pytest.approx(1e6) and first["bytes_per_voxel"] == pytest.approx(100)
    again = cached_fit({"family": "x", "size": 12}, measure, [[8, 8, 8], [16, 16, 16]], path=path)
    assert again == first and len(calls) == 2
    cached_fit({"family": "x", "size": 24}, measure, [[8, 8, 8], [16, 16, 16]], path=path)
    assert len(calls) == 4 and len(read_fits(path)) == 2
    assert json.loads(path.read_text())["format"] == FORMAT


def test_a_foreign_cache_file_is_a_user_error(tmp_path) -> None:
    """A file that is not a fit cache is named, with how to recover."""
    path = tmp_path / "fits.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="delete it"):
        read_fits(path)

"""pyproject.toml builds with this environment's setuptools without a deprecation warning, and the wheel's metadata
carries the SPDX licence expression and the LICENSE file (PEP 639)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import setuptools
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PREPARE = ("import sys, setuptools.build_meta as backend; "
           "print(backend.prepare_metadata_for_build_wheel(sys.argv[1]))")


def test_the_build_backend_reads_pyproject_without_a_deprecation_warning(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "segkit", source / "segkit", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-W", "always", "-c", PREPARE, str(tmp_path)], cwd=source,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert "deprecat" not in (built.stdout + built.stderr).lower(), built.stderr
    metadata = (tmp_path / built.stdout.split()[-1] / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()


def test_the_build_requirement_admits_this_setuptools_and_none_without_spdx_licences():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    setuptools_req, = [Requirement(text) for text in requires if Requirement(text).name == "setuptools"]
    assert setuptools_req.specifier.contains(setuptools.__version__)
    assert not setuptools_req.specifier.contains("76.1.0")      # rejects `license = "<SPDX>"` as invalid
    assert setuptools_req.specifier.contains(Version("77.0.3"))

"""Every documented pip command names a file, a path or segkit's own distribution name (never a bare `segkit`).

`segkit` on the public package index is an unrelated project; a command such as
`pip download segkit` or `pip install --no-index --find-links wheelhouse segkit` could install it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "segkit-revmb"
PIP_COMMAND = re.compile(r"\bpip3?\s+(install|download|wheel)\b(?P<rest>.*)")
# options whose next token is a value, not a requirement
VALUE_OPTIONS = {"-d", "--dest", "-w", "--wheel-dir", "-f", "--find-links", "-i", "--index-url", "--extra-index-url",
                 "--platform", "--python-version", "--implementation", "--abi", "-r", "--requirement", "-c",
                 "--constraint", "-t", "--target", "--prefix", "--root", "--only-binary", "--no-binary",
                 "--progress-bar", "--cache-dir", "--timeout", "--trusted-host"}
# third-party packages the docs install by name on purpose (peers, torch builds, pip itself)
KNOWN_THIRD_PARTY = {"torch", "pip", "nnunetv2", "monai", "surface-distance", "setuptools", "wheel",
                     "nilearn"}   # nilearn: scripts/setup_realdata.sh takes the MNI152 template from its wheel


def documented_files() -> list[Path]:
    """README, every Markdown page under docs/ and the shell scripts."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "scripts").glob("*.sh"))]


def pip_commands(text: str) -> list[str]:
    """The argument part of each pip install/download/wheel command (backslash continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [match["rest"] for line in joined.splitlines() for match in [PIP_COMMAND.search(line)] if match]


def requirement_tokens(arguments: str) -> list[str]:
    """Tokens of a pip command that pip would read as requirements."""
    arguments = arguments.split("#", 1)[0].split("`", 1)[0]
    try:
        tokens = shlex.split(arguments)
    except ValueError:
        tokens = arguments.split()
    found, skip = [], False
    for token in tokens:
        if skip:
            skip = False
        elif token in ("&&", "||", ";", "|"):
            break
        elif token.startswith("-"):
            skip = token in VALUE_OPTIONS
        else:
            found.append(token)
    return found


def foreign_risk(token: str) -> bool:
    """True when a requirement token could resolve a package that is not segkit's (or an intended third party)."""
    if token.startswith((".", "/", "~", "$", "http://", "https://", "file:")) or "/" in token:
        return False   # a path, a file or a URL
    if re.fullmatch(r"[A-Z_]+", token):
        return False   # a placeholder such as NAME
    if token.endswith((".whl", ".tar.gz", ".zip")) or re.match(r"^[\w.\-]+\.whl\[", token):
        return False
    name = re.split(r"[\[<>=!~; ]", token, maxsplit=1)[0].lower().replace("_", "-")
    if name.startswith("$") or name.startswith('"'):
        return False
    return name != DISTRIBUTION and name not in KNOWN_THIRD_PARTY


def test_distribution_name_is_the_unique_one() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"]["segkit"] == "segkit.cli:entry"
    assert (REPO / "segkit" / "py.typed").is_file()
    assert any(c.startswith("Typing :: Typed") for c in project["classifiers"])


@pytest.mark.parametrize("token,risky", [("segkit", True), ("segkit[dicom,plot]", True), ("Segkit==0.1", True),
                                         ("segkit-revmb[dicom,plot]", False), ("/path/to/segkit[dicom]", False),
                                         ("./segkit_revmb-0.1.0-py3-none-any.whl[dicom]", False),
                                         (".[test]", False), ("torch==2.13.0", False), ("numpy", True)])
def test_the_check_recognises_risky_requirements(token: str, risky: bool) -> None:
    assert foreign_risk(token) is risky


def test_scanner_sees_continued_commands() -> None:
    text = 'python -m pip download -d wheelhouse --find-links wheelhouse \\\n    --index-url X \\\n    "segkit[dicom]"\n'
    assert [requirement_tokens(c) for c in pip_commands(text)] == [["segkit[dicom]"]]


def test_no_documented_pip_command_can_resolve_a_foreign_package() -> None:
    risky = []
    for path in documented_files():
        for command in pip_commands(path.read_text(encoding="utf-8")):
            risky += [f"{path.relative_to(REPO)}: pip ...{command.strip()}" for token in requirement_tokens(command)
                      if foreign_risk(token)]
    assert not risky, "documented pip commands that could install a stranger's package:\n" + "\n".join(risky)

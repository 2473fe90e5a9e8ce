"""Tests mirror the source: every module with logic has its test file `tests/<package>/test_<module>.py` (#26 item 5).

`segkit/networks/families/unet.py` -> `tests/networks/families/test_unet.py`; a top-level module
`segkit/plans.py` -> `tests/test_plans.py`. Package `__init__` files are re-exports and lazy
attributes, tested through the names they export.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segkit"

# Modules with nothing of their own to test: data, re-exports, entry shims. Each with its reason.
EXEMPT = {
    "segkit/__main__.py": "`python -m segkit`: one call of cli.entry, run by every subprocess CLI test",
    "segkit/version.py": "one constant",
    "segkit/training/finetune_options.py": "three default numbers (data; quoted by cli/train.py's options)",
    "segkit/networks/family.py": "the NetworkFamily record and two one-line defaults (data; tests/networks/"
                                 "test_registry.py registers a toy family through it)",
}


def mirror_of(module: Path) -> Path:
    """The test file a source module's tests live in."""
    relative = module.relative_to(PACKAGE)
    return ROOT / "tests" / relative.parent / f"test_{relative.name}"


def modules() -> list[str]:
    """Every module of segkit except the packages' __init__ files, as repository-relative paths."""
    return sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def test_every_module_with_logic_has_its_mirrored_test_file() -> None:
    missing = [m for m in modules() if not mirror_of(ROOT / m).is_file() and m not in EXEMPT]
    assert missing == [], "give each module its tests/<package>/test_<module>.py:\n" + "\n".join(missing)


def test_the_exemptions_name_only_existing_unmirrored_modules() -> None:
    stale = [m for m in sorted(EXEMPT) if not (ROOT / m).is_file() or mirror_of(ROOT / m).is_file()]
    assert stale == [], "drop these from EXEMPT (gone, or mirrored now):\n" + "\n".join(stale)


def test_the_mirror_rule() -> None:
    assert mirror_of(PACKAGE / "networks" / "families" / "unet.py") == ROOT / "tests/networks/families/test_unet.py"
    assert mirror_of(PACKAGE / "plans.py") == ROOT / "tests/test_plans.py"

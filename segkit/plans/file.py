"""plans.json on disk: the single reader and writer (atomic, checked before anything reaches disk)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json
from segkit.plans.views import Plans
from segkit.workdir import plans_path


def plans_file(folder: Path) -> Path:
    """plans.json inside a work dir or model folder."""
    return plans_path(Path(folder))


def read_plans(path: str | Path, what: str = "plans.json", needs: tuple[str, ...] = (),
               source: str | Path | None = None) -> Plans:
    """Read and parse plans.json into its typed view; errors name `source` (default: the file).

    `needs`: top-level keys the reader requires beyond the view's own (e.g. `plan --like`'s
    channel names); a file without them, or without 'configurations', is "not a segkit plans file".
    """
    named = Path(source if source is not None else path)
    data = read_json(path, what)
    if needs and (not isinstance(data, Mapping) or any(key not in data for key in needs)
                  or not isinstance(data.get("configurations"), Mapping)):
        raise UserError(f"not a segkit plans file (needs {', '.join(needs)})", named)
    return Plans.from_json(data, named)


def write_plans(path: str | Path, plans: Mapping[str, Any]) -> Plans:
    """Write plans.json atomically (checked first, so nothing malformed reaches disk); return its typed view."""
    view = Plans.from_json(plans, Path(path))
    write_json(path, dict(plans))
    return view

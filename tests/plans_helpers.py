"""Typed plan views of hand-made plans dicts for tests (the stages take `Plans`, never a dict)."""

from __future__ import annotations

from typing import Any

from segkit.plans import Plans


def view(fields: dict[str, Any]) -> Plans:
    """The plan view of a partial plans dict: the required keys filled in (1 channel, 2 outputs) unless given."""
    return Plans.from_json({"num_channels": 1, "num_outputs": 2, **fields})

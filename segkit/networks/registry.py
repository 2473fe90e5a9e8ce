"""The network-family registry: the one list of families the planner, memory model, fit and CLI read.

Adding a family: write a module with its builder, `stage_defaults`, memory tally and a
`FAMILY = NetworkFamily(...)` record (see segkit/networks/families/unet.py), then add one
`register_family(...)` line below (or call it from your own code before planning or building).
"""

from __future__ import annotations

# the family modules themselves, not the package: segkit.networks' __init__ imports this registry (via architecture)
from segkit.networks.families.resenc import FAMILY as RESENC
from segkit.networks.families.revmbconv import FAMILY as REVMBCONV
from segkit.networks.families.stunet import FAMILY as STUNET
from segkit.networks.families.stunet import PRESET_FAMILIES as STUNET_PRESETS
from segkit.networks.families.swinunetr import FAMILY as SWINUNETR
from segkit.networks.families.unet import FAMILY as UNET
from segkit.networks.families.unetpp import FAMILY as UNETPP
from segkit.networks.family import NetworkFamily

_FAMILIES: dict[str, NetworkFamily] = {}


def register_family(family: NetworkFamily) -> NetworkFamily:
    """Make a family known to the planner, the memory model, the builder and the CLI; returns it."""
    existing = _FAMILIES.get(family.name)
    if existing is not None and existing is not family:
        raise ValueError(f"network family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Forget a family (tests that register a toy family clean up with this)."""
    _FAMILIES.pop(name, None)


def get_family(name: str) -> NetworkFamily:
    """The registered family called name (ValueError naming the choices otherwise)."""
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown network family {name!r}; choose from {family_names()}") from None


def family_names() -> tuple[str, ...]:
    """Names of the registered families, in registration order."""
    return tuple(_FAMILIES)


def execution_modes() -> tuple[str, ...]:
    """Every execution mode some registered family has (bench-memory's --modes choices)."""
    modes: dict[str, None] = {}
    for family in _FAMILIES.values():
        modes.update(dict.fromkeys(family.execution_modes))
    return tuple(modes)


def family_of(arch: dict) -> NetworkFamily:
    """The family of an architecture entry."""
    return get_family(str(arch.get("family", "")))


register_family(UNET)
register_family(RESENC)
register_family(REVMBCONV)
register_family(UNETPP)
for _preset in STUNET_PRESETS:
    register_family(_preset)
register_family(STUNET)
register_family(SWINUNETR)   # optional: builds and prices only with MONAI installed (extra `swin`)

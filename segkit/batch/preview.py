"""QC preview PNG: three orthogonal slices through the structure's centre of mass.

Image channel 0 is windowed at its 1st/99th intensity percentiles; the label map is
overlaid in colour with a legend naming each label. Slices are drawn with their physical
aspect ratio. Needs the optional ``plot`` extra (matplotlib); ``preview_available`` tells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.io.image import Geometry
from segkit.jsonio import atomic_path

MISSING_MESSAGE = "--preview skipped: matplotlib is not installed (pip install 'segkit[plot]')"


def preview_available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def centre_slices(label: np.ndarray) -> tuple[int, int, int]:
    """(z, y, x) index of the foreground's centre of mass, or the volume centre when empty."""
    foreground = np.argwhere(label > 0)
    if foreground.size == 0:
        return tuple(int(n // 2) for n in label.shape)
    return tuple(int(round(v)) for v in foreground.mean(axis=0))


def _window(image: np.ndarray) -> np.ndarray:
    """Scale intensities to [0, 1] between the 1st and 99th percentile."""
    low, high = np.percentile(image, [1, 99])
    return np.clip((image - low) / max(float(high - low), 1e-6), 0, 1)


def write_preview(image: np.ndarray, label: np.ndarray, geometry: Geometry, names: dict[int, str],
                  path: str | Path, title: str = "") -> Path:
    """Write a PNG of three orthogonal slices of image (z, y, x) with the label overlay, atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    z, y, x = centre_slices(label)
    sz, sy, sx = geometry.array_spacing
    windowed = _window(image)
    views = [("axial", windowed[z], label[z], sy / sx), ("coronal", windowed[:, y], label[:, y], sz / sx),
             ("sagittal", windowed[:, :, x], label[:, :, x], sz / sy)]
    values = sorted(names)
    colours = plt.get_cmap("tab10")(np.arange(max(len(values), 1)) % 10)
    lookup = np.zeros(int(max(values, default=0)) + 1, dtype=int)
    lookup[values] = np.arange(1, len(values) + 1)
    overlay = np.column_stack([colours[:, :3], np.full(len(colours), 0.45)])
    cmap = ListedColormap(np.vstack([[0, 0, 0, 0], overlay]))
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    for axis, (name, plane, lab, aspect) in zip(axes, views):
        axis.imshow(plane, cmap="gray", origin="lower", aspect=aspect, interpolation="nearest")
        shown = lookup[np.clip(lab, 0, len(lookup) - 1)] * (lab < len(lookup))
        axis.imshow(shown, cmap=cmap, vmin=0, vmax=len(values), origin="lower", aspect=aspect,
                    interpolation="nearest")
        axis.set_title(name)
        axis.axis("off")
    handles = [Patch(color=colours[i][:3], label=f"{v}: {names[v]}") for i, v in enumerate(values)]
    figure.legend(handles=handles, loc="lower center", ncol=max(len(handles), 1), frameon=False)
    figure.suptitle(f"{title}   slices through the centre of mass (z, y, x) = ({z}, {y}, {x})".strip())
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    plt.close(figure)
    return Path(path)

"""What the training images' spacing and intensities spanned, and the warning for inputs outside it.

At plan time `training_ranges(fingerprint)` becomes plans.json's ``"training_ranges"``:

    {"spacing": {"min": [z, y, x], "max": [z, y, x]},          # canonical axis order, mm
     "intensity": [{"channel": "CT", "scheme": "ct", "percentile_0.5": -1000.0,
                    "percentile_99.5": 1500.0}, ...]}            # the training foreground's, per channel

At prediction (`segkit.inference.predictor.ModelEnsemble.prepare`) `range_warnings` compares an
input with it; the warnings land in the case's report.json ``warnings`` and on the QC page:

- spacing: an axis more than SPACING_TOLERANCE (10 %) below the smallest or above the largest
  training spacing of that axis (canonical order, so a sagittally stored image is compared
  axis for axis with what the network saw);
- intensity: for channels whose normalisation keeps absolute units ("ct" and "none"):
  under 1 % of the input's voxels fall inside the training foreground's [0.5th, 99.5th]
  percentile range (the wrong modality or units), or the input's darkest voxels (its 0.5th
  percentile) are brighter than the training foreground's 0.5th percentile plus DARK_MARGIN
  (10 %) of that range's width: images include background darker than the structures (air at
  -1000 HU in CT), so an input without it is in other units, e.g. CT stored without its
  rescale to Hounsfield units (air near 0) or an MR fed to a CT model. Channels normalised per
  image (z-score, rescale) are not compared: their raw scale varies between scanners and is
  divided out before the network sees it.

Models planned before this have no ``training_ranges`` and get no such warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from segkit.plans import Plans, training_ranges_of
from segkit.preprocessing.orientation import CANONICAL, plans_orientation, reorientation_for

SPACING_TOLERANCE = 0.10
ABSOLUTE_SCHEMES = ("ct", "none")
MIN_FRACTION_IN_RANGE = 0.01
DARK_MARGIN = 0.10
SAMPLE_VOXELS = 1 << 20   # voxels looked at per channel (a strided subsample of larger images)


def training_ranges(fingerprint: dict, normalization: Sequence[dict] | None = None) -> dict:
    """plans.json's training_ranges from a fingerprint (and the planned normalisation schemes)."""
    spacings = np.array([case["spacing"] for case in fingerprint.get("cases", []) if "spacing" in case], dtype=float)
    ranges: dict = {}
    if spacings.size:
        ranges["spacing"] = {"min": [round(float(v), 6) for v in spacings.min(axis=0)],
                             "max": [round(float(v), 6) for v in spacings.max(axis=0)]}
    statistics = fingerprint.get("foreground_intensity_statistics") or {}
    intensity = []
    for index in sorted(statistics, key=int):
        entry = statistics[index]
        scheme = (normalization[int(index)].get("scheme") if normalization and int(index) < len(normalization)
                  else None)
        intensity.append({"channel": entry.get("name", str(index)), "scheme": scheme,
                          "percentile_0.5": float(entry["percentile_0.5"]),
                          "percentile_99.5": float(entry["percentile_99.5"])})
    if intensity:
        ranges["intensity"] = intensity
    return ranges


def spacing_warnings(ranges: Mapping, spacing_zyx: Sequence[float], direction: Sequence[float] | None,
                     canonical: bool) -> list[str]:
    """Warnings for axes whose spacing lies outside the training range (plus tolerance)."""
    spacing_range = ranges.get("spacing")
    if not spacing_range:
        return []
    spacing = list(spacing_zyx)
    if canonical and direction is not None:
        spacing = list(reorientation_for(direction).values(spacing))
    low, high = spacing_range["min"], spacing_range["max"]
    outside = [f"{'zyx'[axis]} {value:.3g} mm" for axis, value in enumerate(spacing)
               if value < low[axis] * (1 - SPACING_TOLERANCE) or value > high[axis] * (1 + SPACING_TOLERANCE)]
    if not outside:
        return []
    span = ", ".join(f"{a:.3g}-{b:.3g}" for a, b in zip(low, high))
    return [f"spacing outside the training range: {', '.join(outside)} (training z, y, x: {span} mm)"]


def intensity_warnings(ranges: Mapping, images: np.ndarray) -> list[str]:
    """Warnings for absolute-unit channels whose intensities are unlike the training foreground's."""
    warnings = []
    for channel, entry in enumerate(ranges.get("intensity") or []):
        if entry.get("scheme") not in ABSOLUTE_SCHEMES or channel >= images.shape[0]:
            continue
        low, high = entry["percentile_0.5"], entry["percentile_99.5"]
        volume = images[channel]
        step = max(1, int(np.ceil((volume.size / SAMPLE_VOXELS) ** (1 / 3))))
        sample = np.asarray(volume[::step, ::step, ::step], dtype=np.float32).ravel()
        inside = float(((sample >= low) & (sample <= high)).mean()) if sample.size else 0.0
        darkest = float(np.percentile(sample, 0.5)) if sample.size else low
        name = entry.get("channel", channel)
        if inside < MIN_FRACTION_IN_RANGE:
            warnings.append(f"intensity of channel {name} unlike training: {100 * inside:.1f} % of the voxels lie in "
                            f"the training foreground's range [{low:.4g}, {high:.4g}] (wrong modality or units?)")
        elif darkest > low + DARK_MARGIN * (high - low):
            warnings.append(f"intensity of channel {name} outside the training range: its darkest voxels "
                            f"({darkest:.4g}) are brighter than the training foreground's 0.5th percentile "
                            f"({low:.4g}); other units (e.g. CT not in Hounsfield units)?")
    return warnings


def range_warnings(plans: Plans, images: np.ndarray, spacing_zyx: Sequence[float],
                   direction: Sequence[float] | None) -> list[str]:
    """Spacing and intensity warnings of one input against the plans' training_ranges (none without them)."""
    ranges = training_ranges_of(plans)
    if not ranges:
        return []
    canonical = plans_orientation(plans) == CANONICAL
    return spacing_warnings(ranges, spacing_zyx, direction, canonical) + intensity_warnings(ranges, images)

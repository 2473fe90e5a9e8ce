"""Per-case label statistics (voxel count, volume in mL) and the batch-wide CSV.

Each named label of the plan is counted: an integer label is the voxels with that value,
a region (a list of values, e.g. BraTS 'whole tumour') the voxels with any of them.
Volume uses the physical voxel volume: product of the spacing in mm, / 1000 for mL. With
--uncertainty each label also carries its structure's uncertainty scores (CSV column
``uncertainty_score``: 1 - the Dice the model expects of that structure).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from segkit.io.image import Geometry
from segkit.jsonio import atomic_path, read_json

COUNT_CHUNK_VOXELS = 1 << 22   # voxels converted to int64 at a time while counting labels
CSV_COLUMNS = ("case_id", "label", "values", "voxels", "volume_ml", "uncertainty_score")


def label_counts(label: np.ndarray) -> np.ndarray:
    """Voxels per label value (negative values count as 0): np.bincount of the whole map, chunk by chunk.

    bincount needs int64 input: converting the whole map at once took 16 bytes per voxel
    (1.2 GB for a 300 x 512 x 512 CT) for what is a few hundred counters.
    """
    flat = np.ravel(label)
    counts = np.zeros(0, dtype=np.intp)
    for start in range(0, flat.size, COUNT_CHUNK_VOXELS):
        part = np.bincount(flat[start:start + COUNT_CHUNK_VOXELS].astype(np.int64).clip(min=0))
        if len(part) > len(counts):
            counts = np.pad(counts, (0, len(part) - len(counts)))
        counts[:len(part)] += part
    return counts


def label_statistics(case_id: str, label: np.ndarray, geometry: Geometry,
                     labels: dict[str, int | list[int]], uncertainty: dict | None = None) -> dict:
    """Voxel count and volume (mL) of every non-background plan label in a (z, y, x) label map.

    With an uncertainty entry (`segkit.inference.uncertainty.summary`), each label gets its
    structure's scores under "uncertainty" and the case its score.
    """
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    counts = label_counts(label)
    per_label = {}
    for name, value in labels.items():
        values = [int(v) for v in (value if isinstance(value, list) else [value])]
        if values == [0]:
            continue
        voxels = int(sum(counts[v] for v in values if v < len(counts)))
        per_label[name] = {"values": values, "voxels": voxels, "volume_ml": voxels * voxel_ml}
        structure = ((uncertainty or {}).get("structures") or {}).get(name)
        if structure is not None:
            per_label[name]["uncertainty"] = structure
    stats = {"case_id": case_id, "spacing_mm": list(geometry.array_spacing), "voxel_volume_ml": voxel_ml,
             "shape": list(label.shape), "labels": per_label}
    if uncertainty is not None:
        stats["uncertainty"] = {key: value for key, value in uncertainty.items() if key != "structures"}
    return stats


def statistics_rows(stats: dict) -> list[dict]:
    """CSV rows (one per label) of a case's statistics."""
    return [{"case_id": stats["case_id"], "label": name, "values": " ".join(map(str, entry["values"])),
             "voxels": entry["voxels"], "volume_ml": f"{entry['volume_ml']:.6f}",
             "uncertainty_score": entry["uncertainty"]["score"] if "uncertainty" in entry else ""}
            for name, entry in stats["labels"].items()]


def write_statistics_csv(rows: list[dict], path: str | Path) -> Path:
    """Write statistics rows as CSV atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path, suffix=".csv") as tmp:
        tmp.write_text(buffer.getvalue())
    return Path(path)


def batch_statistics_csv(output_dir: Path, case_entries: list[dict], path: Path) -> Path | None:
    """Collect the statistics JSON of every ok/skipped case into one CSV; None when there is none."""
    rows = []
    for entry in sorted(case_entries, key=lambda e: e["case_id"]):
        stats_name = entry.get("outputs", {}).get("statistics")
        if entry["status"] in ("ok", "skipped") and stats_name:
            rows += statistics_rows(read_json(output_dir / stats_name, "case statistics"))
    return write_statistics_csv(rows, path) if rows else None


def merge_statistics_csv(output_dir: str | Path) -> Path | None:
    """Concatenate statistics_part<K>.csv files into statistics.csv (sorted by case)."""
    output_dir = Path(output_dir)
    rows = []
    for part in sorted(output_dir.glob("statistics_part*.csv")):
        with part.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    if not rows:
        return None
    return write_statistics_csv(sorted(rows, key=lambda r: (r["case_id"], r["label"])), output_dir / "statistics.csv")

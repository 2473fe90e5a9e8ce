"""CASE_qc.png: a small three-panel QC picture drawn with numpy alone, for report.html.

Unlike `segkit.batch.preview` (matplotlib, the optional ``plot`` extra, a legend with volumes)
this picture needs no extra dependency, so every folder run gets one per case. It uses the
preview's display convention (`display_panels`: the canonical LPS frame, radiological view):
axial, coronal and sagittal slices through the structures' centre, each panel scaled to its
physical aspect ratio inside a PANEL x PANEL square, the label map blended in the colours of
`label_colour`, and the orientation letters (R/L, A/P, S/I) stamped at the panel edges from a
built-in 5 x 7 bitmap font, so the letters travel with the picture itself.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from segkit.batch.preview import EDGE_LETTERS, windowed_panels
from segkit.io.image import Geometry
from segkit.jsonio import atomic_path

PANEL = 160                     # pixels per panel side
OVERLAY_ALPHA = 0.45
LETTER_SCALE = 2                # glyph pixels per font pixel
# matplotlib's tab10, so the QC picture and the matplotlib preview colour structures alike
TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
         (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
GLYPHS = {
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
}


def label_colour(index: int) -> tuple[int, int, int]:
    """RGB colour of the index-th structure (in ascending label value order)."""
    return TAB10[index % len(TAB10)]


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a (rows, cols, 3) uint8 array."""
    rows, cols, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(rows))   # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", cols, rows, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _scaled_indices(rows: int, cols: int, aspect: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source row and column of each output pixel: the plane at its physical aspect, fitted into size x size."""
    height, width = rows * aspect, float(cols)
    scale = size / max(height, width)
    out_rows, out_cols = max(1, round(height * scale)), max(1, round(width * scale))
    row_index = np.minimum((np.arange(out_rows) / (aspect * scale)).astype(np.intp), rows - 1)
    col_index = np.minimum((np.arange(out_cols) / scale).astype(np.intp), cols - 1)
    return row_index, col_index


def _stamp(canvas: np.ndarray, letter: str, top: int, left: int) -> None:
    """Draw one yellow letter with a black outline, its top-left corner at (top, left)."""
    glyph = np.array([[c == "1" for c in row] for row in GLYPHS[letter]])
    glyph = np.kron(glyph, np.ones((LETTER_SCALE, LETTER_SCALE), dtype=bool))
    height, width = glyph.shape
    outline = np.zeros((height + 2, width + 2), dtype=bool)
    for dr in range(3):
        for dc in range(3):
            outline[dr:dr + height, dc:dc + width] |= glyph
    top, left = max(0, min(top, canvas.shape[0] - height - 2)), max(0, min(left, canvas.shape[1] - width - 2))
    region = canvas[top:top + height + 2, left:left + width + 2]
    region[outline] = (0, 0, 0)
    region[1:1 + height, 1:1 + width][glyph] = (255, 255, 0)


def _letters(canvas: np.ndarray, name: str) -> None:
    """The panel's orientation letters at its left, right, top and bottom edges."""
    left, right, top, bottom = EDGE_LETTERS[name]
    height, width = 7 * LETTER_SCALE + 2, 5 * LETTER_SCALE + 2
    middle_row, middle_col = (PANEL - height) // 2, (PANEL - width) // 2
    _stamp(canvas, left, middle_row, 2)
    _stamp(canvas, right, middle_row, PANEL - width - 2)
    _stamp(canvas, top, 2, middle_col)
    _stamp(canvas, bottom, PANEL - height - 2, middle_col)


def _panel(plane: np.ndarray, labels: np.ndarray, aspect: float, lookup: np.ndarray, colours: np.ndarray,
           name: str) -> np.ndarray:
    """One PANEL x PANEL RGB panel: grey image, coloured labels, letters."""
    row_index, col_index = _scaled_indices(plane.shape[0], plane.shape[1], aspect, PANEL)
    grey = (plane[np.ix_(row_index, col_index)] * 255).astype(np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    shown = lookup[np.clip(labels[np.ix_(row_index, col_index)], 0, len(lookup) - 1)]
    painted = shown > 0
    rgb[painted] = (1 - OVERLAY_ALPHA) * rgb[painted] + OVERLAY_ALPHA * colours[shown[painted] - 1]
    canvas = np.zeros((PANEL, PANEL, 3), dtype=np.uint8)
    top, left = (PANEL - rgb.shape[0]) // 2, (PANEL - rgb.shape[1]) // 2
    canvas[top:top + rgb.shape[0], left:left + rgb.shape[1]] = np.clip(rgb, 0, 255).astype(np.uint8)
    _letters(canvas, name)
    return canvas


def render_qc(image: np.ndarray, label: np.ndarray, geometry: Geometry, values: list[int]) -> np.ndarray:
    """(PANEL, 3 * PANEL, 3) uint8: axial, coronal, sagittal panels of image channel 0 with the labels `values`."""
    # windowed as float32 (the whole volume's percentiles; only the three planes are scaled)
    panels, _ = windowed_panels(image, label, geometry, np.float32)
    ordered = sorted(values)
    lookup = np.zeros(max(ordered, default=0) + 1, dtype=np.intp)
    lookup[ordered] = np.arange(1, len(ordered) + 1)
    colours = np.array([label_colour(i) for i in range(max(len(ordered), 1))], dtype=np.float32)
    return np.concatenate([_panel(plane, labels, aspect, lookup, colours, name)
                           for name, plane, labels, aspect in panels], axis=1)


def write_qc_image(image: np.ndarray, label: np.ndarray, geometry: Geometry, values: list[int],
                   path: str | Path) -> Path:
    """Write CASE_qc.png atomically."""
    data = encode_png(render_qc(image, label, geometry, values))
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(data)
    return Path(path)

"""The dependency-free QC picture: a valid PNG, the radiological patient frame, letters, label colours."""

from __future__ import annotations

import zlib

import numpy as np

from segkit.batch.thumbnail import PANEL, encode_png, label_colour, render_qc, write_qc_image
from segkit.io.image import Geometry
from segkit.preprocessing.orientation import reorientation_for

LPS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def decode_png(data: bytes) -> np.ndarray:
    """(rows, cols, 3) of an 8-bit RGB PNG with filter type 0 rows (what encode_png writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    position, idat = 8, b""
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        if kind == b"IDAT":
            idat += data[position + 8:position + 8 + length]
        position += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert not raw[:, 0].any()
    return raw[:, 1:].reshape(height, width, 3)


def left_lesion_case(direction: tuple) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """A cube with one label-1 blob on the patient's left (canonical x high), stored with `direction`."""
    canonical_image = np.zeros((20, 30, 30), dtype=np.float32)
    canonical_image[4:16, 5:25, 5:25] = 100
    canonical_label = np.zeros((20, 30, 30), dtype=np.uint8)
    canonical_label[8:12, 12:18, 20:25] = 1
    geometry = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), direction, (30, 30, 20))
    reorientation = reorientation_for(direction)
    return (np.ascontiguousarray(reorientation.from_canonical(canonical_image)),
            np.ascontiguousarray(reorientation.from_canonical(canonical_label)), geometry)


def test_png_encoding_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(rgb)), rgb)


def test_lesion_on_the_patients_left_is_drawn_on_the_pictures_right_for_any_storage(tmp_path):
    pictures = []
    for direction in (LPS, RAS):
        image, label, geometry = left_lesion_case(direction)
        path = write_qc_image(image, label, geometry, [1], tmp_path / "qc.png")
        picture = decode_png(path.read_bytes())
        assert picture.shape == (PANEL, 3 * PANEL, 3)
        pictures.append(picture)
    np.testing.assert_array_equal(pictures[0], pictures[1])   # same picture however the image was stored
    axial = pictures[0][:, :PANEL].astype(int)
    colour = np.array(label_colour(0))
    tinted = np.abs(axial - (0.55 * 255 + 0.45 * colour)).sum(axis=2) < 20   # label colour over a white image
    columns = np.nonzero(tinted.any(axis=0))[0]
    assert columns.size and columns.min() > PANEL // 2     # radiological: patient's left on the picture's right


def test_orientation_letters_are_stamped_in_yellow():
    image, label, geometry = left_lesion_case(LPS)
    picture = render_qc(image, label, geometry, [1])
    yellow = (picture[..., 0] == 255) & (picture[..., 1] == 255) & (picture[..., 2] == 0)
    axial = yellow[:, :PANEL]
    assert axial[:, :20].any() and axial[:, PANEL - 20:].any()   # R on the left edge, L on the right edge
    assert axial[:20].any() and axial[PANEL - 20:].any()         # A at the top, P at the bottom


def test_foreground_centre_and_window_are_the_whole_volume_ones_computed_in_slabs(monkeypatch):
    """The slab-wise centre equals the mean of every foreground index; windowed planes equal the windowed volume's."""
    from segkit.batch import preview

    rng = np.random.default_rng(3)
    monkeypatch.setattr(preview, "CENTRE_SLAB_VOXELS", 50)          # several slabs, partial last one
    for trial in range(20):
        shape = tuple(int(n) for n in rng.integers(2, 18, 3))
        label = (rng.uniform(size=shape) < rng.uniform(0, 0.5)) * rng.integers(0, 4, shape).astype(np.uint8)
        if trial % 2:
            label = label.transpose(2, 0, 1)[::-1]                   # a reoriented view, as display_panels gives
        foreground = np.argwhere(label > 0)
        expected = (tuple(int(round(v)) for v in foreground.mean(axis=0)) if foreground.size
                    else tuple(n // 2 for n in label.shape))
        assert preview.centre_slices(label) == expected
        image = rng.normal(0, 100, shape).astype(np.int16)
        low, high = np.percentile(image.astype(np.float32), [1, 99])
        whole = np.clip((image.astype(np.float32) - low) / max(float(high - low), 1e-6), 0, 1)
        limits = preview.window_limits(image, np.float32)
        for plane in (np.s_[1], np.s_[::-1, 0, :], np.s_[::-1, :, -1]):
            got = preview.windowed(image[plane].astype(np.float32), limits)
            assert got.dtype == whole.dtype and np.array_equal(got, whole[plane])

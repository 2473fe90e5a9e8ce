"""Header facts: lossy compression flagged from the header (and decoder noise kept off stderr)."""

from __future__ import annotations

from segkit.io.dicom import read_dicom_study


def test_lossy_12_bit_jpeg_is_read_quietly_and_flagged(tmp_path, capfd):
    from dicom_data import write_lossy_jpeg_series

    write_lossy_jpeg_series(tmp_path / "study", slices=4)
    capfd.readouterr()
    study = read_dicom_study(tmp_path / "study", 1)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""          # GDCM printed ~8 lines per slice before
    assert study.images.shape == (1, 4, 1024, 256) and study.images.max() > 0
    assert len(study.warnings) == 1 and "lossy-compressed" in study.warnings[0]
    assert "LossyImageCompression (0028,2110) is 01" in study.warnings[0]
    assert any("kept off stderr" in note and "JPEG" in note for note in study.notes)

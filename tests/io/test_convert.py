"""`segkit convert`: MSD and BraTS folders become the raw layout with exact geometry and labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from segkit.cli import main
from segkit.errors import UserError
from segkit.io.convert import convert_dataset, detect_format
from segkit.io.dataset import load_dataset, training_cases
from segkit.io.image import Geometry, read_image, write_image
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.verify import verify_dataset

SPEC = PhantomSpec(shape=(12, 16, 16))
BRATS = {  # layout -> (case folder of case 1, separator, channel suffixes in segkit channel order, ET value)
    "brats2021": ("BraTS2021_00001", "_", ("flair", "t1", "t1ce", "t2"), 4),
    "brats2023": ("BraTS-GLI-00001-000", "-", ("t2f", "t1n", "t1c", "t2w"), 3),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """One source folder per layout: 2 labelled cases and 1 unlabelled (validation) case."""
    base = tmp_path_factory.mktemp("sources")
    return {layout: generate_dataset(base / layout, 2, layout, spec=SPEC, num_test=1)
            for layout in ("msd", "brats2021", "brats2023")}


@pytest.fixture
def source_copy(sources, tmp_path):
    """A writable copy of one source folder, for tests that damage it."""
    return lambda layout: Path(shutil.copytree(sources[layout], tmp_path / f"src_{layout}"))


def _convert(capsys, *args) -> tuple[int, str, str]:
    code = main(["convert", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _sub_geometry(image: sitk.Image) -> Geometry:
    """Spatial (first three axes) geometry of a 4D SimpleITK image."""
    direction = np.asarray(image.GetDirection()).reshape(4, 4)[:3, :3]
    return Geometry(tuple(image.GetSpacing()[:3]), tuple(image.GetOrigin()[:3]),
                    tuple(float(v) for v in direction.flatten()), tuple(image.GetSize()[:3]))


def _paint(labels: np.ndarray, dataset_labels: dict, order: list[int]) -> np.ndarray:
    """Region masks from a label map, painted back in regions_class_order (nnU-Net convention)."""
    regions = [values for name, values in dataset_labels.items() if values != 0]
    painted = np.zeros_like(labels)
    for values, value in zip(regions, order):
        painted[np.isin(labels, values)] = value
    return painted


def test_msd_split_keeps_geometry_exactly(sources, tmp_path, capsys):
    dest = tmp_path / "msd_out"
    code, out, _ = _convert(capsys, sources["msd"], dest, "--format", "msd")
    assert code == 0 and "2 training and 1 test" in out
    source = sitk.ReadImage(str(sources["msd"] / "imagesTr" / "BRATS_001.nii.gz"))
    assert source.GetDimension() == 4 and source.GetSize()[3] == 4
    source_array = sitk.GetArrayFromImage(source)                  # (channel, z, y, x)
    source_affine = nib.load(sources["msd"] / "imagesTr" / "BRATS_001.nii.gz").affine
    assert not np.allclose(np.asarray(_sub_geometry(source).direction), np.eye(3).flatten())
    for channel in range(4):
        path = dest / "imagesTr" / f"BRATS_001_{channel:04d}.nii.gz"
        converted = sitk.ReadImage(str(path))
        assert Geometry.of_sitk(converted) == _sub_geometry(source)  # bit-exact, not within tolerance
        assert np.array_equal(nib.load(path).affine, source_affine)
        assert np.array_equal(sitk.GetArrayFromImage(converted), source_array[channel])
    assert (dest / "labelsTr" / "BRATS_001.nii.gz").read_bytes() == \
        (sources["msd"] / "labelsTr" / "BRATS_001.nii.gz").read_bytes()
    assert sorted(p.name for p in (dest / "imagesTs").iterdir()) == [f"BRATS_003_{c:04d}.nii.gz" for c in range(4)]
    dataset = json.loads((dest / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}
    assert dataset["labels"] == {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
    assert dataset["numTraining"] == 2 and dataset["file_ending"] == ".nii.gz"
    assert dataset["segkit_source"]["format"] == "msd"
    assert dataset["segkit_source"]["original"]["modality"]["0"] == "FLAIR"
    assert [c.case_id for c in training_cases(load_dataset(dest))] == ["BRATS_001", "BRATS_002"]
    assert verify_dataset(dest) == []


def test_msd_single_channel_task_is_copied(tmp_path):
    source = tmp_path / "Task09_Spleen"
    images, label, geometry = _phantom_case()
    write_image(images[0], geometry, source / "imagesTr" / "spleen_2.nii.gz")
    write_image((label > 0).astype(np.uint8), geometry, source / "labelsTr" / "spleen_2.nii.gz")
    (source / "dataset.json").write_text(json.dumps({
        "name": "Spleen", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "spleen"},
        "training": [{"image": "./imagesTr/spleen_2.nii.gz", "label": "./labelsTr/spleen_2.nii.gz"}], "test": []}))
    dataset = convert_dataset(source, tmp_path / "out")
    out = tmp_path / "out" / "imagesTr" / "spleen_2_0000.nii.gz"
    assert out.read_bytes() == (source / "imagesTr" / "spleen_2.nii.gz").read_bytes()
    assert dataset["channel_names"] == {"0": "CT"} and dataset["labels"] == {"background": 0, "spleen": 1}
    assert verify_dataset(tmp_path / "out") == []


def _phantom_case():
    from segkit.phantom import make_case
    return make_case(7, SPEC)


@pytest.mark.parametrize("layout", ["brats2021", "brats2023"])
def test_brats_round_trip(sources, tmp_path, capsys, layout):
    case, sep, suffixes, et_value = BRATS[layout]
    dest = tmp_path / f"{layout}_out"
    code, _, _ = _convert(capsys, sources[layout], dest, "-j", "2")   # auto detection, two workers
    assert code == 0
    for channel, suffix in enumerate(suffixes):
        original = sources[layout] / case / f"{case}{sep}{suffix}.nii.gz"
        converted = dest / "imagesTr" / f"{case}_{channel:04d}.nii.gz"
        assert converted.read_bytes() == original.read_bytes()
    original_seg = read_image(sources[layout] / case / f"{case}{sep}seg.nii.gz")
    stored = read_image(dest / "labelsTr" / f"{case}.nii.gz")
    assert stored.geometry == original_seg.geometry
    assert et_value in np.unique(original_seg.array)
    assert sorted(np.unique(stored.array)) == [0, 1, 2, 3]
    dataset = json.loads((dest / "dataset.json").read_text())
    source = dataset["segkit_source"]
    back = np.zeros_like(stored.array)
    for value, original in source["label_map"].items():
        back[stored.array == int(value)] = original
    assert np.array_equal(back, original_seg.array)
    assert np.array_equal(_paint(stored.array, dataset["labels"], dataset["regions_class_order"]), stored.array)
    assert dataset["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}
    assert source["format"] == layout and source["channel_suffixes"] == list(suffixes)
    assert source["case_pattern"].format(case=case, suffix="seg") == f"{case}/{case}{sep}seg.nii.gz"
    assert dataset["numTraining"] == 2 and len(list((dest / "imagesTs").iterdir())) == 4
    info = load_dataset(dest)
    assert info.region_based and info.regions_class_order == [2, 1, 3]
    assert verify_dataset(dest) == []


def test_regions_class_order_reconstructs_every_tissue():
    labels = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    from segkit.io.convert_brats import REGION_LABELS, REGIONS_CLASS_ORDER
    assert np.array_equal(_paint(labels, REGION_LABELS, REGIONS_CLASS_ORDER), labels)
    assert not np.array_equal(_paint(labels, REGION_LABELS, [1, 2, 3]), labels)


def test_other_brats2023_prefixes(source_copy, tmp_path):
    source = source_copy("brats2023")
    for folder in list(source.iterdir()):
        renamed = source / folder.name.replace("GLI", "MEN")
        folder.rename(renamed)
        for path in renamed.iterdir():
            path.rename(renamed / path.name.replace("GLI", "MEN"))
    assert detect_format(source) == "brats2023"
    convert_dataset(source, tmp_path / "out")
    assert (tmp_path / "out" / "labelsTr" / "BraTS-MEN-00001-000.nii.gz").is_file()


def test_auto_detection(sources, tmp_path):
    assert {layout: detect_format(path) for layout, path in sources.items()} == \
        {"msd": "msd", "brats2021": "brats2021", "brats2023": "brats2023"}
    nnunet = generate_dataset(tmp_path / "nn", 1, "nnunet", spec=SPEC)
    with pytest.raises(UserError, match="already in the nnU-Net"):
        detect_format(nnunet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot detect"):
        detect_format(tmp_path / "empty")


def _assert_fails(capsys, src, dest, words: str, names: str, *extra) -> None:
    code, _, err = _convert(capsys, src, dest, *extra)
    assert code == 2, err
    assert words in err and names in err, err
    assert not (Path(dest) / "dataset.json").exists()
    assert not any(Path(dest).rglob("*.nii.gz")) if Path(dest).exists() else True


def test_missing_channel_file(source_copy, tmp_path, capsys):
    source = source_copy("brats2021")
    (source / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").unlink()
    _assert_fails(capsys, source, tmp_path / "out", "missing channel file", "BraTS2021_00002_t1ce.nii.gz")


def test_unknown_suffix(source_copy, tmp_path, capsys):
    source = source_copy("brats2023")
    case = source / "BraTS-GLI-00001-000"
    shutil.copy(case / "BraTS-GLI-00001-000-t1c.nii.gz", case / "BraTS-GLI-00001-000-adc.nii.gz")
    _assert_fails(capsys, source, tmp_path / "out", "unknown suffix 'adc'", "BraTS-GLI-00001-000-adc.nii.gz")


def test_undeclared_brats_label_leaves_nothing_behind(source_copy, tmp_path, capsys):
    source = source_copy("brats2021")
    seg = source / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz"
    image = read_image(seg)
    write_image(np.where(image.array == 4, 3, image.array).astype(np.uint8), image.geometry, seg)  # 3 is not 2021
    _assert_fails(capsys, source, tmp_path / "out", "label values [3]", "BraTS2021_00002_seg.nii.gz", "-j", "2")


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.pop("training"), "no 'training'"),
    (lambda d: d.update(labels={"0": "background", "x": "tumour"}), "not an integer"),
    (lambda d: d.update(modality={"0": "FLAIR", "1": "T1", "2": "T1ce"}), "declares 3"),
    (lambda d: d["training"].append({"image": "../elsewhere.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}),
     "escapes the dataset folder"),
])
def test_bad_msd_dataset_json(source_copy, tmp_path, capsys, damage, words):
    source = source_copy("msd")
    data = json.loads((source / "dataset.json").read_text())
    damage(data)
    (source / "dataset.json").write_text(json.dumps(data))
    names = "BRATS_001.nii.gz" if "declares" in words else "dataset.json"
    _assert_fails(capsys, source, tmp_path / "out", words, names, "--format", "msd")


def test_invalid_json_and_missing_listed_file(source_copy, tmp_path, capsys):
    source = source_copy("msd")
    (source / "imagesTr" / "BRATS_002.nii.gz").unlink()
    _assert_fails(capsys, source, tmp_path / "out1", "not found", "BRATS_002.nii.gz")
    (source / "dataset.json").write_text("{not json")
    _assert_fails(capsys, source, tmp_path / "out2", "not valid JSON", "dataset.json", "--format", "msd")


def test_non_empty_destination_needs_overwrite(sources, tmp_path, capsys):
    dest = tmp_path / "out"
    (dest / "imagesTr").mkdir(parents=True)
    (dest / "imagesTr" / "stale_0000.nii.gz").write_bytes(b"old")
    (dest / "notes.txt").write_text("keep me")
    code, _, err = _convert(capsys, sources["brats2023"], dest)
    assert code == 2 and "--overwrite" in err and str(dest) in err
    code, _, _ = _convert(capsys, sources["brats2023"], dest, "--overwrite")
    assert code == 0
    assert not (dest / "imagesTr" / "stale_0000.nii.gz").exists() and (dest / "notes.txt").is_file()
    assert verify_dataset(dest) == []


def test_destination_inside_source_is_refused(source_copy, capsys):
    source = source_copy("brats2021")
    _assert_fails(capsys, source, source / "converted", "overlaps the source", "converted")


def test_float_brats_seg_is_accepted_only_when_integral(source_copy, tmp_path, capsys):
    source = source_copy("brats2021")
    seg = source / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz"
    image = read_image(seg)
    write_image(image.array.astype(np.float64), image.geometry, seg)
    convert_dataset(source, tmp_path / "ok")
    stored = nib.load(tmp_path / "ok" / "labelsTr" / "BraTS2021_00001.nii.gz")
    assert stored.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(stored.dataobj), np.where(nib.load(seg).get_fdata() == 4, 3, nib.load(seg).get_fdata()))
    write_image(image.array.astype(np.float32) + 0.25, image.geometry, seg)
    _assert_fails(capsys, source, tmp_path / "bad", "non-integer", "BraTS2021_00001_seg.nii.gz")


@pytest.mark.parametrize("values", [[3, 1, 1, 0], [-128, 127, 0], [0, 100000, 7], [4]])
def test_present_values_matches_unique(values):
    from segkit.io.convert_files import present_values
    dtype = np.int8 if min(values) < 0 else np.int64
    array = np.array(values, dtype=dtype)
    assert present_values(array).tolist() == np.unique(array).tolist()


def test_msd_split_keeps_stored_type_and_scaling(tmp_path):
    source = tmp_path / "Task05_Scaled"
    (source / "imagesTr").mkdir(parents=True)
    (source / "labelsTr").mkdir()
    stored = np.random.default_rng(0).integers(-500, 500, (10, 12, 8, 2)).astype(np.int16)
    affine = np.array([[0.0, -0.6, 0.0, 12.0], [0.62, 0.0, 0.0, -40.0], [0.0, 0.0, 3.6, 7.5], [0, 0, 0, 1]])
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(2.0, 10.0)
    nib.save(image, source / "imagesTr" / "prostate_00.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((10, 12, 8), np.uint8), affine), source / "labelsTr" / "prostate_00.nii.gz")
    (source / "dataset.json").write_text(json.dumps({
        "modality": {"0": "T2", "1": "ADC"}, "labels": {"0": "background", "1": "PZ", "2": "TZ"},
        "training": [{"image": "./imagesTr/prostate_00.nii.gz", "label": "./labelsTr/prostate_00.nii.gz"}]}))
    convert_dataset(source, tmp_path / "out")
    original = nib.load(source / "imagesTr" / "prostate_00.nii.gz")
    for channel in range(2):
        out = nib.load(tmp_path / "out" / "imagesTr" / f"prostate_00_{channel:04d}.nii.gz")
        assert out.get_data_dtype() == np.int16
        assert np.array_equal(np.asanyarray(out.dataobj), np.asanyarray(original.dataobj)[..., channel])
        assert np.array_equal(out.affine, original.affine)
    assert verify_dataset(tmp_path / "out") == []

"""SNOMED CT coding of segments: built-in names, pydicom's SCT keywords, dataset.json label_coding, fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from segkit.errors import UserError
from segkit.io.segment_coding import code_from_name, coding_notes, segment_coding_for

ANATOMICAL, ABNORMAL, TISSUE = "91723000", "49755003", "85756007"


@pytest.mark.parametrize(("name", "category", "type_value", "laterality"), [
    ("Left-Hippocampus", ANATOMICAL, "5366008", "left"),
    ("Right-Lateral-Ventricle", ANATOMICAL, "66720007", "right"),
    ("hippocampus_r", ANATOMICAL, "5366008", "right"),
    ("lh.thalamus", ANATOMICAL, "42695009", "left"),
    ("Left-Cerebellum-Cortex", ANATOMICAL, "25991003", "left"),
    ("liver", ANATOMICAL, "10200004", None),
    ("kidney", ANATOMICAL, "64033007", None),
    ("left atrium", ANATOMICAL, "82471001", None),           # a structure named "left ...", not a side
    ("tumour", ABNORMAL, "108369006", None),
    ("enhancing tumor", ABNORMAL, "108369006", None),
    ("edema", ABNORMAL, "79654002", None),
    ("oedema", ABNORMAL, "79654002", None),
    ("necrosis", ABNORMAL, "6574001", None),
])
def test_common_names_get_their_snomed_codes(name, category, type_value, laterality):
    coding = code_from_name(name)
    assert (coding["category"]["value"], coding["type"]["value"], coding["laterality"]) == (
        category, type_value, laterality)
    assert coding["category"]["scheme"] == coding["type"]["scheme"] == "SCT" and coding["source"] == "built-in"
    assert "note" not in coding


def test_a_lesion_named_with_its_organ_lies_in_that_region():
    coding = code_from_name("liver tumour")
    assert coding["type"]["meaning"] == "Neoplasm" and coding["region"]["meaning"] == "Liver"


def test_unknown_names_fall_back_to_tissue_with_a_note():
    coding = segment_coding_for({"background": 0, "liver": 1, "blob 7": 2})
    assert list(coding) == ["liver", "blob 7"]
    assert coding["blob 7"]["type"]["value"] == coding["blob 7"]["category"]["value"] == TISSUE
    notes = coding_notes(coding)
    assert len(notes) == 1 and "'blob 7'" in notes[0] and "label_coding" in notes[0]


def test_dataset_json_label_coding_overrides_the_name(tmp_path):
    given = {"blob 7": {"type": "Neoplasm", "region": "Pancreas", "laterality": None},
             "HV": {"category": {"scheme": "SCT", "value": "91723000", "meaning": "Anatomical Structure"},
                    "type": {"scheme": "SCT", "value": "8993003", "meaning": "Hepatic vein"}},
             "liver": {"type": "Liver", "laterality": "left"}}
    coding = segment_coding_for({"background": 0, "blob 7": 1, "HV": 2, "liver": 3}, given, tmp_path / "dataset.json")
    assert coding["blob 7"]["category"]["value"] == ABNORMAL and coding["blob 7"]["region"]["meaning"] == "Pancreas"
    assert coding["HV"]["type"]["value"] == "8993003" and coding["liver"]["laterality"] == "left"
    assert {entry["source"] for entry in coding.values()} == {"dataset.json"} and coding_notes(coding) == []


@pytest.mark.parametrize(("given", "message"), [
    ({"liver": {"type": "Livr"}}, "not a SNOMED CT keyword"),
    ({"liver": {"typ": "Liver"}}, "at least \"type\""),
    ({"liver": {"type": "Liver", "side": "left"}}, "unknown keys"),
    ({"liver": {"type": "Liver", "laterality": "up"}}, "laterality must be one of"),
    ({"spleen": {"type": "Spleen"}}, "does not declare"),
    ({"liver": {"type": {"scheme": "SCT", "value": "10200004"}}}, "scheme"),
    (["liver"], "must be an object"),
])
def test_malformed_label_coding_is_a_user_error_naming_dataset_json(tmp_path, given, message):
    with pytest.raises(UserError, match=message) as caught:
        segment_coding_for({"background": 0, "liver": 1}, given, tmp_path / "dataset.json")
    assert Path(caught.value.path) == tmp_path / "dataset.json"

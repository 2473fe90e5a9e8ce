"""What each segment is, in codes viewers understand: SNOMED CT category, type, laterality and region.

A DICOM-SEG segment carries a coded SegmentedPropertyCategory (CID 7150: anatomical structure,
morphologically abnormal structure, tissue ...) and SegmentedPropertyType (the structure
itself: liver, hippocampus, neoplasm, edema), optionally a laterality (type modifier, CID 244:
left / right) and the anatomic region it lies in. Coding every segment as generic "Tissue"
tells a viewer nothing, so each plan label gets a coding:

1. from the dataset's ``dataset.json`` key ``label_coding`` (the user's word, checked here)::

       "label_coding": {
         "lesion": {"category": "MorphologicallyAbnormalStructure", "type": "Neoplasm", "region": "Liver"},
         "HV":     {"category": {"scheme": "SCT", "value": "91723000", "meaning": "Anatomical Structure"},
                    "type": {"scheme": "SCT", "value": "8993003", "meaning": "Hepatic vein"}},
         "L-Hip":  {"type": "Hippocampus", "laterality": "left"}
       }

   A code is a pydicom SCT keyword (``codes.SCT.<Keyword>``, e.g. ``"Liver"``) or a full
   ``{"scheme", "value", "meaning"}``; ``category`` defaults from the type, ``laterality`` is
   ``left``, ``right``, ``bilateral`` or absent, ``region`` optional;
2. else from the label's name: a side word (``Left-``, ``_r``, ``lh.`` ...) becomes the
   laterality, the rest is looked up in a table of common names (``tumour``, ``edema``,
   ``enhancing tumor``, FreeSurfer names such as ``Left-Cerebellum-Cortex``) and then in
   pydicom's SNOMED CT dictionary by its CamelCase keyword (``liver`` -> ``Liver``,
   ``Left-Hippocampus`` -> ``Hippocampus`` + left); a lesion word with an organ word
   (``liver tumour``) gets the organ as its region;
3. else generic Tissue, with a note saying how to code it.

`plan` writes the result into plans.json (``segment_coding``), so the model carries it;
a model planned before this gets the same from its label names at prediction time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from segkit.errors import UserError

DATASET_KEY = "label_coding"
PLANS_KEY = "segment_coding"
LATERALITIES = {"left": "Left", "right": "Right", "bilateral": "Bilateral"}

# side words at word-ish boundaries ("Left-Hippocampus", "hippocampus_l", "lh.white"), not "lateral"
_SIDE = re.compile(r"(?:^|[^a-z])(left|right|l|r|lh|rh)(?:$|[^a-z])", re.IGNORECASE)
_LEFT_WORDS = {"left", "l", "lh"}

# abnormal findings: their category is MorphologicallyAbnormalStructure
ABNORMAL_TYPES = {"Neoplasm", "Edema", "Necrosis", "Lesion", "Mass", "Cyst", "Hemorrhage", "Nodule", "Metastasis"}

# names (lower case, words joined by one space) whose SCT keyword is not their CamelCase
SYNONYMS = {
    "tumour": "Neoplasm", "tumor": "Neoplasm", "tumors": "Neoplasm", "tumours": "Neoplasm", "cancer": "Neoplasm",
    "whole tumor": "Neoplasm", "whole tumour": "Neoplasm", "tumor core": "Neoplasm", "tumour core": "Neoplasm",
    "enhancing tumor": "Neoplasm", "enhancing tumour": "Neoplasm", "enhancing": "Neoplasm", "et": "Neoplasm",
    "wt": "Neoplasm", "tc": "Neoplasm", "non enhancing tumor": "Neoplasm", "non enhancing tumor core": "Neoplasm",
    "netc": "Neoplasm", "ncr": "Necrosis", "necrotic": "Necrosis", "necrotic core": "Necrosis",
    "resection cavity": "Lesion", "lesions": "Lesion", "mets": "Metastasis", "metastases": "Metastasis",
    "edema": "Edema", "oedema": "Edema", "ed": "Edema", "peritumoral edema": "Edema", "peritumoural oedema": "Edema",
    "snfh": "Edema", "haemorrhage": "Hemorrhage", "hemorrhage": "Hemorrhage", "bleed": "Hemorrhage",
    "nodules": "Nodule", "kidneys": "Kidney", "lungs": "Lung", "vessel": "BloodVessel", "vessels": "BloodVessel",
    "hepatic vessel": "HepaticVein", "hepatic vessels": "HepaticVein", "caudate": "CaudateNucleus",
    "pallidum": "GlobusPallidus", "accumbens": "NucleusAccumbens", "accumbens area": "NucleusAccumbens",
    "brain stem": "BrainStem", "brainstem": "BrainStem", "cerebellum cortex": "CerebellarCortex",
    "cerebellum white matter": "CerebellarWhiteMatter", "cerebral white matter": "CerebralWhiteMatter",
    "white matter": "WhiteMatter", "grey matter": "GrayMatter", "gray matter": "GrayMatter", "csf": "CerebrospinalFluid",
    "3rd ventricle": "ThirdVentricle", "4th ventricle": "FourthVentricle", "lateral ventricle": "LateralVentricle",
    "inf lat vent": "LateralVentricle", "adrenal": "AdrenalGland", "adrenal gland": "AdrenalGland",
    "gall bladder": "Gallbladder", "urinary bladder": "Bladder", "thyroid gland": "Thyroid", "spinal cord": "SpinalCord",
    "oesophagus": "Esophagus", "ventraldc": "Diencephalon", "ventral dc": "Diencephalon", "thalamus proper": "Thalamus",
}


def _code(keyword: str) -> dict[str, str] | None:
    """{scheme, value, meaning} of a pydicom SCT keyword, None when pydicom does not know it."""
    # imported here: pydicom's code dictionary takes ~0.2 s to import, and `segkit train` reaches this
    # module (label sides for mirroring) without ever coding a segment -- inside its time budget
    from pydicom.sr.codedict import codes

    try:
        code = getattr(codes.SCT, keyword)
    except AttributeError:
        return None
    return {"scheme": code.scheme_designator, "value": str(code.value), "meaning": str(code.meaning)}


def _keyword(words: list[str]) -> str:
    """CamelCase keyword of words ('lateral', 'ventricle' -> 'LateralVentricle')."""
    return "".join(word[:1].upper() + word[1:] for word in words)


def split_side(name: str) -> tuple[str | None, list[str]]:
    """(laterality 'left'/'right' or None, the other words in lower case) of a label name."""
    text = str(name).replace("_", " ")
    match = _SIDE.search(text)
    side = None
    if match is not None:
        side = "left" if match.group(1).lower() in _LEFT_WORDS else "right"
        text = text[:match.start(1)] + " " + text[match.end(1):]
    return side, [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _lookup(words: list[str]) -> str | None:
    """SCT keyword for words: the synonym table, then the CamelCase keyword (a trailing plural 's' dropped)."""
    if not words:
        return None
    joined = " ".join(words)
    if joined in SYNONYMS:
        return SYNONYMS[joined]
    candidates = [words] + ([words[:-1] + [words[-1][:-1]]] if words[-1].endswith("s") else [])
    for candidate in candidates:
        if _code(_keyword(candidate)) is not None:
            return _keyword(candidate)
    return None


def _category_for(type_keyword: str) -> str:
    """CID 7150 category keyword for a type: abnormal findings, tissue, else anatomical structure."""
    if type_keyword in ABNORMAL_TYPES:
        return "MorphologicallyAbnormalStructure"
    return "Tissue" if type_keyword in ("Tissue", "GrayMatter", "WhiteMatter") else "AnatomicalStructure"


def _coding(category: str, type_keyword: str, laterality: str | None, region: str | None, source: str) -> dict:
    """A JSON coding entry from SCT keywords."""
    return {"category": _code(category), "type": _code(type_keyword), "laterality": laterality,
            "region": _code(region) if region else None, "source": source}


def code_from_name(name: str) -> dict:
    """The coding of a label from its name alone (built-in table + pydicom's SCT dictionary), else Tissue + a note."""
    whole = _lookup([w for w in re.split(r"[^a-z0-9]+", str(name).lower()) if w])
    if whole is not None and whole.startswith(("Left", "Right")):      # "left atrium" is a structure, not a side
        return _coding(_category_for(whole), whole, None, None, "built-in")
    side, words = split_side(name)
    found = _lookup(words)
    if found is not None:
        return _coding(_category_for(found), found, side, None, "built-in")
    for cut in range(1, len(words)):       # "liver tumour": a finding word with an organ word
        finding, organ = _lookup(words[cut:]), _lookup(words[:cut])
        if finding in ABNORMAL_TYPES and organ is not None and organ not in ABNORMAL_TYPES:
            return _coding("MorphologicallyAbnormalStructure", finding, side, organ, "built-in")
        finding, organ = _lookup(words[:cut]), _lookup(words[cut:])
        if finding in ABNORMAL_TYPES and organ is not None and organ not in ABNORMAL_TYPES:
            return _coding("MorphologicallyAbnormalStructure", finding, side, organ, "built-in")
    coding = _coding("Tissue", "Tissue", side, None, "fallback")
    coding["note"] = (f"no SNOMED CT code known for the label {name!r}: its DICOM-SEG segment is coded as generic "
                      f"Tissue; code it in dataset.json \"{DATASET_KEY}\" and re-plan (docs/own-dataset.md)")
    return coding


def _user_code(value: Any, what: str, path: Path | None) -> dict[str, str]:
    """A code given in dataset.json: an SCT keyword or {scheme, value, meaning}; UserError otherwise."""
    if isinstance(value, str):
        code = _code(value)
        if code is None:
            raise UserError(f"{DATASET_KEY}: {what} {value!r} is not a SNOMED CT keyword pydicom knows "
                            "(e.g. 'Liver', 'Neoplasm'); give {\"scheme\", \"value\", \"meaning\"} instead", path)
        return code
    if isinstance(value, dict) and all(isinstance(value.get(k), str) and value.get(k) for k in ("scheme", "value",
                                                                                                 "meaning")):
        return {"scheme": value["scheme"], "value": value["value"], "meaning": value["meaning"]}
    raise UserError(f"{DATASET_KEY}: {what} must be an SCT keyword or {{\"scheme\", \"value\", \"meaning\"}}, "
                    f"got {value!r}", path)


def code_from_dataset(name: str, entry: Any, path: Path | None = None) -> dict:
    """The coding a dataset.json label_coding entry gives one label; UserError naming dataset.json when malformed."""
    if not isinstance(entry, dict) or "type" not in entry:
        raise UserError(f"{DATASET_KEY}[{name!r}] must be an object with at least \"type\"", path)
    unknown = sorted(set(entry) - {"category", "type", "laterality", "region"})
    if unknown:
        raise UserError(f"{DATASET_KEY}[{name!r}] has unknown keys {unknown} (category, type, laterality, region)",
                        path)
    type_code = _user_code(entry["type"], f"[{name!r}] type", path)
    default = _category_for(entry["type"]) if isinstance(entry["type"], str) else "AnatomicalStructure"
    category = _user_code(entry.get("category", default), f"[{name!r}] category", path)
    laterality = entry.get("laterality")
    if laterality is not None and laterality not in LATERALITIES:
        raise UserError(f"{DATASET_KEY}[{name!r}] laterality must be one of {sorted(LATERALITIES)} or absent", path)
    region = _user_code(entry["region"], f"[{name!r}] region", path) if entry.get("region") else None
    return {"category": category, "type": type_code, "laterality": laterality, "region": region,
            "source": "dataset.json"}


def segment_coding_for(labels: dict, dataset_coding: Any = None, path: Path | None = None) -> dict[str, dict]:
    """Coding of every non-background label: dataset.json's label_coding first, else from the name."""
    if dataset_coding is not None and not isinstance(dataset_coding, dict):
        raise UserError(f"{DATASET_KEY} must be an object mapping label names to codings", path)
    given = dataset_coding or {}
    stray = sorted(set(given) - set(labels))
    if stray:
        raise UserError(f"{DATASET_KEY} names labels that dataset.json does not declare: {stray}", path)
    return {name: code_from_dataset(name, given[name], path) if name in given else code_from_name(name)
            for name, value in labels.items() if value not in (0, [0])}


def coding_notes(coding: dict[str, dict]) -> list[str]:
    """The notes of labels that fell back to generic Tissue."""
    return [entry["note"] for entry in coding.values() if entry.get("note")]

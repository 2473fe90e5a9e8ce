"""Contracts as code: each artefact format has one owner module (format, writer, single reader), and every
path inside a work dir comes from segkit/workdir.py.

Two kinds of test:
- behaviour: each reader is imported from its owner and refuses a malformed file with a UserError that
  names the file; the module that used to hold a second reader no longer has it;
- source (ast, nothing imported): `torch.load` / `np.load` / `torch.save` / `np.save(z)` and
  `read_json(..., "<artefact>")` appear only in the owner modules listed here, and no work-dir path is
  built with `/ "models"`, `/ "splits.json"`, `/ f"fold_{k}"`, ... outside workdir.py.
"""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import pytest
import torch

from segkit import workdir
from segkit.batch.report import SCHEMA_VERSION as REPORT_SCHEMA
from segkit.batch.report import read_report
from segkit.errors import UserError
from segkit.fingerprint import FINGERPRINT_VERSION, is_current, read_fingerprint, write_fingerprint
from segkit.models.checkpoint import FORMAT, READ_KEYS, REQUIRED_KEYS, load_checkpoint, save_checkpoint
from segkit.models.package import MANIFEST, build_manifest, read_manifest
from segkit.plans import (
    LabelCoding,
    Plans,
    label_mode_of,
    read_plans,
    slice_axis_of,
    spatial_dims_of,
    write_plans,
)
from segkit.training.splits import read_splits

PACKAGE = Path(__file__).resolve().parents[1] / "segkit"

# call -> the modules allowed to make it (relative to segkit/), and why
OWNERS = {
    "torch.load": {"models/checkpoint.py"},       # segkit checkpoints, and nnU-Net's via load_weights_only
    "torch.save": {"models/checkpoint.py"},
    "np.load": {"inference/probabilities.py",       # <CASE>.npz probabilities
                "preprocessing/store.py"},          # preprocessed <CASE>.npy / <CASE>_seg.npy
    "np.save": {"preprocessing/store.py"},
    "np.savez": {"inference/probabilities.py"},
    "np.savez_compressed": set(),
}
# read_json(path, "<what>") labels of artefacts with an owner -> that owner
READ_JSON_OWNERS = {"splits.json": "training/splits.py", "splits file": "training/splits.py",
                    "fingerprint": "fingerprint.py", "batch report": "batch/report.py",
                    "preprocessed properties": "preprocessing/store.py", "find_best.json": "models/find_best.py",
                    "pruning.json": "models/pruning.py",
                    "uncertainty calibration": "models/calibration.py",
                    "plans.json": "plans/file.py", "plans file": "plans/file.py", "model plans copy": "plans/file.py"}
# names of entries inside a work dir / model folder; joining them with `/` is workdir.py's job
WORK_DIR_NAMES = {"models", "preprocessed", "plans.json", "fingerprint.json", "splits.json", "find_best.json",
                  "validation", "pruning.json", "uncertainty_calibration.json"}
WORK_DIR_PREFIXES = ("fold_", "checkpoint_")
# modules that build paths of other layouts with the same names -> the names they may join, and why
FOREIGN_LAYOUTS = {
    "models/nnunet.py": {"plans.json", "fold_"},   # an nnU-Net model folder (fold_<k>/checkpoint_*.pth)
    "models/unpack.py": {"models"},                 # the package cache: CACHE/models/<sha>/ (not a work dir)
}


def sources() -> dict[str, ast.AST]:
    """Every module of segkit/ (path relative to segkit/) -> its syntax tree."""
    return {path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"), str(path))
            for path in sorted(PACKAGE.rglob("*.py"))}


def dotted(node: ast.AST) -> str | None:
    """`np.load` for an attribute chain np.load, None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts)).replace("numpy.", "np.")
    return None


def calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """(dotted callee, call) of every call in a tree."""
    return [(name, node) for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (name := dotted(node.func)) is not None]


def _literal_prefix(node: ast.AST) -> str | None:
    """The string a constant or the literal start of an f-string begins with."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def work_dir_joins(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every `something / "<work-dir name>"` or `/ f"fold_..."` in a tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            text = _literal_prefix(node.right)
            if text is not None and (text in WORK_DIR_NAMES or text.startswith(WORK_DIR_PREFIXES)):
                found.append((node.lineno, text))
    return found


# --- source rules ----------------------------------------------------------------------------------------

def test_artefact_loads_and_saves_only_in_their_owner_modules():
    """A second torch.load/np.load (or save) of an artefact outside its owner fails here."""
    outside = [f"{module}:{node.lineno}: {name}" for module, tree in sources().items()
               for name, node in calls(tree) if name in OWNERS and module not in OWNERS[name]]
    assert outside == [], "artefact I/O outside its owner module:\n" + "\n".join(outside)


def test_owned_json_artefacts_are_read_only_by_their_owner():
    """read_json(path, "splits.json" / "fingerprint" / "batch report" / ...) only in the owner module."""
    outside = []
    for module, tree in sources().items():
        for name, node in calls(tree):
            if name == "read_json" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                owner = READ_JSON_OWNERS.get(node.args[1].value)
                if owner is not None and module != owner:
                    outside.append(f"{module}:{node.lineno}: read_json(..., {node.args[1].value!r})")
    assert outside == [], "\n".join(outside)


def test_work_dir_paths_come_from_workdir_py():
    """`work / "models"`, `models / "splits.json"`, `model / f"fold_{k}"`, ... only in workdir.py."""
    built = [f"{module}:{line}: / {name!r}" for module, tree in sources().items()
             if module != "workdir.py" for line, name in work_dir_joins(tree)
             if not any(name.startswith(allowed) for allowed in FOREIGN_LAYOUTS.get(module, ()))]
    assert built == [], "work-dir paths built outside segkit/workdir.py:\n" + "\n".join(built)


def test_the_source_rules_catch_what_they_are_meant_to():
    """The detectors see a second reader and a hand-built work-dir path (so the rules cannot pass vacuously)."""
    tree = ast.parse("import numpy as np, torch\nx = np.load(p)\ny = torch.load(q)\nz = work / 'models' / c\n"
                     "w = m / f'fold_{k}' / 'checkpoint_final.pt'\nr = read_json(p, 'splits.json')\n")
    assert {name for name, _ in calls(tree)} >= {"np.load", "torch.load", "read_json"}
    assert sorted(name for _, name in work_dir_joins(tree)) == ["checkpoint_final.pt", "fold_", "models"]


def test_former_second_readers_are_gone():
    """inference.model no longer reads checkpoints, evaluation.cv_predictions no longer reads probabilities/splits."""
    import segkit.evaluation.cv_predictions as cv
    import segkit.inference.model as model

    assert not hasattr(model, "read_checkpoint") and not hasattr(model, "CHECKPOINT_FORMAT")
    assert not hasattr(cv, "load_probabilities")
    assert getattr(cv, "read_splits", read_splits) is read_splits   # if present, it is the owner's


# --- the owners' readers ---------------------------------------------------------------------------------

def _checkpoint(**drop: bool) -> dict:
    """A small real checkpoint payload (all writer keys), minus the keys named in drop."""
    payload = {"format": FORMAT, "network_state": {"w": torch.ones(2, 3)}, "architecture": {"family": "plain"},
               "in_channels": 1, "num_outputs": 2, "configuration": "3d_fullres", "plans_sha256": "ab",
               "epoch": 3}
    return {k: v for k, v in payload.items() if k not in drop}


def test_checkpoint_owner_round_trip_and_refusals(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _checkpoint())
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["network_state"]["w"], torch.ones(2, 3)) and loaded["epoch"] == 3
    assert set(READ_KEYS) < set(REQUIRED_KEYS)
    with pytest.raises(ValueError, match="required keys"):
        save_checkpoint(tmp_path / "d.pt", _checkpoint(epoch=True))
    # the reader needs only READ_KEYS (imported nnU-Net and older checkpoints lack the training keys)
    torch.save(_checkpoint(epoch=True, plans_sha256=True, configuration=True), tmp_path / "lean.pt")
    assert load_checkpoint(tmp_path / "lean.pt")["num_outputs"] == 2
    torch.save(_checkpoint(architecture=True), tmp_path / "noarch.pt")
    with pytest.raises(UserError, match="lacks keys architecture") as err:
        load_checkpoint(tmp_path / "noarch.pt")
    assert str(err.value.path) == str(tmp_path / "noarch.pt")
    torch.save({**_checkpoint(), "format": "segkit-checkpoint-0"}, tmp_path / "old.pt")
    with pytest.raises(UserError, match="unsupported checkpoint format"):
        load_checkpoint(tmp_path / "old.pt")


def test_plans_fingerprint_report_manifest_owners(tmp_path):
    plans = {"schema_version": 1, "num_channels": 1, "num_outputs": 2, "label_mode": "softmax", "configurations": {}}
    written = write_plans(workdir.plans_path(tmp_path), plans)
    assert dict(read_plans(workdir.plans_path(tmp_path)).raw) == dict(written.raw) == plans
    with pytest.raises(UserError, match="num_outputs"):
        write_plans(tmp_path / "bad.json", {"num_channels": 1})
    assert not (tmp_path / "bad.json").exists()

    fingerprint = {"fingerprint_version": FINGERPRINT_VERSION, "cases": [{"case_id": "a"}, {"case_id": "b"}]}
    write_fingerprint(workdir.fingerprint_path(tmp_path), fingerprint)
    stored = read_fingerprint(workdir.fingerprint_path(tmp_path))
    assert is_current(stored, ["a", "b"]) and not is_current(stored, ["a"])

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"schema_version": REPORT_SCHEMA, "state": "complete", "totals": {}, "cases": []}))
    assert read_report(report)["state"] == "complete"
    report.write_text(json.dumps({"schema_version": REPORT_SCHEMA, "cases": []}))
    with pytest.raises(UserError, match="lacks state, totals"):
        read_report(report)

    package = tmp_path / "m.zip"
    manifest = build_manifest({"3d_fullres/plans.json": b"{}"}, {"configurations": ["3d_fullres"]})
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
    with zipfile.ZipFile(package) as archive:
        assert read_manifest(archive, package)["files"] == manifest["files"]
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr(MANIFEST, json.dumps({**manifest, "files": {"../evil": {"sha256": "0", "bytes": 1}}}))
    with zipfile.ZipFile(package) as archive, pytest.raises(UserError, match="unsafe member name"):
        read_manifest(archive, package)


def test_workdir_helpers_lay_out_a_work_dir(tmp_path):
    model = workdir.model_dir(tmp_path, "3d_fullres")
    assert model == workdir.models_root(tmp_path) / "3d_fullres"
    assert workdir.fold_dir(model, 2).name == "fold_2" and workdir.fold_dir(model, None).name == "fold_all"
    assert workdir.fold_dir(model, "all") == workdir.fold_dir(model, None)
    assert workdir.checkpoint_path(workdir.fold_dir(model, 0), "best").relative_to(model).as_posix() == \
        "fold_0/checkpoint_best.pt"
    assert workdir.validation_dir(model, 1).relative_to(tmp_path).as_posix() == "models/3d_fullres/fold_1/validation"
    assert workdir.find_best_path(tmp_path).parent == tmp_path and not workdir.is_work_dir(tmp_path)
    model.mkdir(parents=True)
    assert workdir.is_work_dir(tmp_path)


def test_plan_defaults_live_in_plans_py():
    """One default each for label_mode, spatial_dims (configuration entry or architecture) and the slice axis."""
    bare = {"num_channels": 1, "num_outputs": 2}
    assert label_mode_of(Plans.from_json(bare)) == "softmax"
    assert label_mode_of(Plans.from_json({**bare, "label_mode": "sigmoid"})) == "sigmoid"
    assert LabelCoding.from_json({}).label_mode == "softmax"
    assert spatial_dims_of({"patch_size": [64, 64]}) == 2
    assert spatial_dims_of({"kernel_sizes": [[3, 3, 3]]}) == 3
    assert spatial_dims_of({"spatial_dims": 2, "patch_size": [1, 2, 3]}) == 2
    assert slice_axis_of({"patch_size": [32, 32]}) == 0 and slice_axis_of({"patch_size": [8, 8, 8]}) is None
    assert slice_axis_of({"spatial_dims": 2, "patch_size": [8, 8], "slice_axis": 2}) == 2


# --- plans.json: segkit/plans/ owns it ------------------------------------------------------------

# A string-key read of a plans dict (`plans["num_outputs"]`, `plans.get("outputs")`, `plans[PLANS_KEY]`,
# `read_plans_json(path)["configurations"]`, on any name containing "plans") outside segkit/plans/ fails: the
# views and accessors there hold every key name and default. models/nnunet.py's `NnunetPlans` reads nnU-Net v2's
# own plans.json (another artefact) by attribute, so it needs no exception.
PLANS_READERS = {"read_json", "write_json", "json.load", "json.loads", "json.dump", "json.dumps", "open"}


def _key_of(node: ast.AST) -> str | None:
    """The key of a subscript or get(): a string constant, or a module constant's name (`PLANS_KEY`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name if name is not None and name.isupper() else None


def _holds_plans(target: ast.AST) -> bool:
    """A name or attribute containing "plans", or a call of a function whose name does (`read_plans_json(...)`)."""
    if isinstance(target, ast.Call):
        target = target.func
    name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None
    return name is not None and "plans" in name.lower()


def plans_key_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) of every `<...plans...>["key"]` or `<...plans...>.get("key")` in a tree."""
    found = []
    for node in ast.walk(tree):
        target = key = None
        if isinstance(node, ast.Subscript):
            target, key = node.value, _key_of(node.slice)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "setdefault")
              and node.args):
            target, key = node.func.value, _key_of(node.args[0])
        if key is not None and target is not None and _holds_plans(target):
            found.append((node.lineno, key))
    return sorted(found)


def test_no_string_key_reads_of_plans_outside_segkit_plans():
    """Outside segkit/plans/, no module reads a plans dict by key: it uses segkit.plans' views and accessors."""
    reads = {module: found for module, tree in sources().items() if not module.startswith("plans/")
             and (found := plans_key_reads(tree))}
    assert reads == {}, "\n".join(f"{module}: {found}: use segkit.plans' views and accessors"
                                   for module, found in reads.items())


# A string-key read of a configuration entry (`entry["patch_size"]`, `cfg.get("batch_size")`,
# `configuration_entry(plans, c)["architecture"]`, `configurations_of(plans)[c]["spacing"]`, on any name containing
# "entry", "config" or "cfg") outside segkit/plans/ fails: `Configuration` holds every field and default. Writes
# (`entry["slice_axis"] = 2` while the planner builds an entry) are not reads. models/nnunet.py reads nnU-Net v2's
# own plans configurations (another artefact, translated there), so it is the one exception.
ENTRY_KEYS = {"target_spacing", "median_shape", "patch_size", "batch_size", "resampling", "mirror_axes",
              "architecture", "previous_stage", "slice_axis", "keep_spacing_axes", "mirror_note", "mirror_swap_axis",
              "SWAP_KEY", "memory", "spatial_dims", "training_fit", "memory_fit", "inference", "batch_dice"}
ENTRY_NAMES = ("entry", "config", "cfg")
FOREIGN_ENTRIES = {"models/nnunet.py"}   # nnU-Net v2's plans.json configurations -> segkit entries


def _holder_name(target: ast.AST) -> str | None:
    """The name a subscript or get() reads from: `entry`, `self.config_entry`, `configuration_entry(...)`,
    and through a subscript (`configurations_of(plans)[name]` -> configurations_of)."""
    while isinstance(target, (ast.Call, ast.Subscript)):
        target = target.func if isinstance(target, ast.Call) else target.value
    return target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None


def entry_key_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) of every read of a configuration-entry key from something named like an entry or configuration."""
    found = []
    for node in ast.walk(tree):
        target = key = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target, key = node.value, _key_of(node.slice)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "setdefault")
              and node.args):
            target, key = node.func.value, _key_of(node.args[0])
        name = _holder_name(target) if target is not None else None
        if key in ENTRY_KEYS and name is not None and any(part in name.lower() for part in ENTRY_NAMES):
            found.append((node.lineno, key))
    return sorted(found)


def test_no_string_key_reads_of_configuration_entries_outside_segkit_plans():
    """Outside segkit/plans/, configuration entries are read through `Configuration` (segkit.plans), never by key."""
    reads = {module: found for module, tree in sources().items()
             if not module.startswith("plans/") and module not in FOREIGN_ENTRIES and (found := entry_key_reads(tree))}
    assert reads == {}, "\n".join(f"{module}: {found}: use segkit.plans.Configuration"
                                   for module, found in reads.items())


def test_the_entry_rule_catches_what_it_is_meant_to():
    """Planted reads of an entry are found; writes, other artefacts' keys and typed access are not."""
    tree = ast.parse("def f(plans, entry, self, ckpt):\n"
                     "    a = entry['patch_size']\n"
                     "    b = self.config_entry.get('batch_size', 2)\n"
                     "    c = configuration_entry(plans, name)['architecture']\n"
                     "    d = configurations_of(plans)[name]['target_spacing']\n"
                     "    e = cfg.get(SWAP_KEY)\n"
                     "    entry['slice_axis'] = 2\n"
                     "    g = ckpt['architecture']\n"
                     "    h = entry.patch_size\n"
                     "    i = entry['name_of_something_else']\n")
    assert entry_key_reads(tree) == [(2, "patch_size"), (3, "batch_size"), (4, "architecture"),
                                     (5, "target_spacing"), (6, "SWAP_KEY")]


def test_plans_json_is_read_and_written_only_by_segkit_plans():
    """No JSON read or write of `plans_path(...)` / `plans_file(...)` outside segkit/plans/ (read_plans*, write_plans)."""
    outside = []
    for module, tree in sources().items():
        if module.startswith("plans/"):
            continue
        for name, node in calls(tree):
            first = node.args[0] if node.args else None
            if (name in PLANS_READERS and isinstance(first, ast.Call)
                    and dotted(first.func) in ("plans_path", "plans_file", "workdir.plans_path")):
                outside.append(f"{module}:{node.lineno}: {name}({dotted(first.func)}(...))")
    assert outside == [], "\n".join(outside)


def test_the_plans_rules_catch_what_they_are_meant_to():
    tree = ast.parse("def f(plans, self):\n    a = plans['num_outputs']\n    b = self.plans.get('outputs')\n"
                     "    c = entry['patch_size']\n    write_json(plans_path(work), plans)\n"
                     "    d = target_plans[PLANS_KEY]\n    e = read_plans_json(p).get('configurations')\n"
                     "    f = plans[index]\n    g = num_outputs_of(plans)\n")
    assert plans_key_reads(tree) == [(2, "num_outputs"), (3, "outputs"), (6, "PLANS_KEY"), (7, "configurations")]
    assert [name for name, node in calls(tree) if name in PLANS_READERS
            and isinstance(node.args[0], ast.Call) and dotted(node.args[0].func) == "plans_path"] == ["write_json"]

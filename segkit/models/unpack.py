"""Verify a model package (``segkit predict -m model.zip``) and extract it into a cache folder.

A package is refused (UserError, exit 2) when it is not a readable zip (truncated), has no
valid manifest, holds a member whose name is unsafe (absolute, '..', backslash, link,
duplicate) or not listed in the manifest, lacks a listed member, or when any member's
bytes differ from the manifest's sha256/size (tampered). Verification reads every byte.

Extraction goes to ``$SEGKIT_CACHE`` (default ``$XDG_CACHE_HOME/segkit`` or
``~/.cache/segkit``) under ``models/<sha256 of the zip>/package/`` (one ``<config>/`` folder
per configuration; a ``segkit-model-package-1`` zip has its single configuration at the top and
is extracted to ``models/<sha256>/<configuration>/``), written to a temp folder first and
renamed, so a half-extracted package is never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from segkit.cachedir import cache_root
from segkit.errors import UserError
from segkit.models.package import (
    LEGACY_PACKAGE_FORMAT,
    MANIFEST,
    POSTPROCESSING_MEMBER,
    check_member_name,
    manifest_configurations,
    read_cached_manifest,
    read_manifest,
    sha256_of,
)
from segkit.workdir import find_best_path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class UnpackedModel:
    """An extracted, verified package: one model folder per configuration and what the manifest says."""

    model_dirs: dict[str, Path]
    folds: dict[str, list[str]]
    checkpoint: str
    manifest: dict
    postprocessing: dict | None = None

    @property
    def configurations(self) -> list[str]:
        """Packaged configurations (two for an ensemble)."""
        return list(self.model_dirs)

    @property
    def model_dir(self) -> Path:
        """The model folder of the first configuration."""
        return next(iter(self.model_dirs.values()))


def is_model_package(path: str | Path) -> bool:
    """True when path names a .zip file (a model package candidate)."""
    return str(path).lower().endswith(".zip")


def _check_members(archive: zipfile.ZipFile, manifest: dict, package: Path) -> None:
    """Every member listed exactly once, no extras, no links or directories."""
    names = [info.filename for info in archive.infolist()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"model package has duplicate members {duplicates}", package)
    for info in archive.infolist():
        check_member_name(info.filename, package)
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISLNK(mode):
            raise UserError(f"model package member {info.filename!r} is a directory or link", package)
    expected = set(manifest["files"]) | {MANIFEST}
    extra, missing = sorted(set(names) - expected), sorted(expected - set(names))
    if extra or missing:
        raise UserError(f"model package members differ from its manifest (unlisted {extra}, missing {missing})",
                        package)


def _copy_verified(archive: zipfile.ZipFile, name: str, entry: dict, target: Path, package: Path) -> None:
    """Extract one member to target while hashing it; refuse a size or checksum mismatch."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with archive.open(name) as source, target.open("wb") as sink:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                sink.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise UserError(f"member {name} is corrupt ({err}); the package is truncated or damaged", package) from None
    if size != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
        raise UserError(f"checksum mismatch for {name}: the package was modified or damaged", package)


def _open(package: Path) -> zipfile.ZipFile:
    """Open the zip; a truncated or non-zip file is a UserError."""
    if not package.is_file():
        raise UserError("model package not found", package)
    try:
        return zipfile.ZipFile(package)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"not a readable zip, the package is truncated or damaged ({err})", package) from None


def _cached_is_intact(folder: Path, manifest: dict) -> bool:
    """True when a previous extraction holds exactly the manifest's files with their checksums."""
    try:
        if read_cached_manifest(folder) != manifest:
            return False
        return all(sha256_of(folder / name) == entry["sha256"] for name, entry in manifest["files"].items())
    except (OSError, ValueError):
        return False


def _extract(archive: zipfile.ZipFile, manifest: dict, final: Path, package: Path) -> None:
    """Extract every member into a staging folder (verifying each), then rename it onto final."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
    try:
        for name, entry in manifest["files"].items():
            _copy_verified(archive, name, entry, staging / name, package)
        (staging / MANIFEST).write_text(json.dumps(manifest))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def unpack_model(package: str | Path, cache: str | Path | None = None) -> UnpackedModel:
    """Verify every member of a model package and extract it (or reuse an intact extraction)."""
    package = Path(package)
    with _open(package) as archive:
        manifest = read_manifest(archive, package)
        _check_members(archive, manifest, package)
        root = Path(cache) if cache is not None else cache_root()
        legacy = manifest["format"] == LEGACY_PACKAGE_FORMAT
        names = manifest_configurations(manifest)
        final = root / "models" / sha256_of(package)[:32] / (names[0] if legacy else "package")
        final.parent.mkdir(parents=True, exist_ok=True)
        # torchrun ranks unpack the same package at once: one extracts, the others wait and reuse it.
        with (final.parent / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _cached_is_intact(final, manifest):
                _extract(archive, manifest, final, package)
    if legacy:
        dirs = {names[0]: final}
        folds = {names[0]: [str(f) for f in manifest.get("folds", [])]}
        decision = _decision(find_best_path(final), package) if find_best_path(final).is_file() else None
    else:
        dirs = {name: final / name for name in names}
        folds = {name: [str(f) for f in (manifest.get("folds") or {}).get(name, [])] for name in names}
        member = final / POSTPROCESSING_MEMBER
        decision = _decision(member, package) if member.is_file() else None
    return UnpackedModel(dirs, folds, str(manifest.get("checkpoint", "final")), manifest, decision)


def _decision(path: Path, package: Path) -> dict:
    """The packaged post-processing decision, validated."""
    from segkit.models.postprocessing import load_decision

    try:
        return load_decision(path)
    except UserError as err:
        raise UserError(f"packaged post-processing is invalid ({err.message})", package) from None

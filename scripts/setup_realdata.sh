#!/usr/bin/env bash
# Install the real images of the development benchmark (scripts/bench_real.py); benchmark-only, never
# a segkit runtime dependency. Sources (provenance and licences: docs/dependencies.md):
#   - Debian package mricron-data: Colin27 T1 head (ch2, ch2bet, ch2better) and the AAL atlas labels,
#     installed under /usr/share/mricron/templates;
#   - the nilearn wheel from PyPI (not installed, only unpacked): the ICBM 2009a MNI152 T1 template
#     and its grey/white-matter probability maps, copied to $SEGKIT_REALDATA (default ~/.cache/segkit-realdata);
#   - the PyPI source distributions of TotalSegmentator 2.18.0 (Apache-2.0: two abdominal CT subjects with
#     their reference organ masks, from its tests) and pyradiomics 3.1.0 (BSD-3-Clause: its test cases, CT and
#     MR images with one-lesion masks), fetched from PyPI by pinned sha256 (not installed, only unpacked):
#     the CT and small-lesion tasks of scripts/bench_suite.py (scripts/realdata.py builds them).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${SEGKIT_REALDATA:-$HOME/.cache/segkit-realdata}
nilearn_version=${SEGKIT_NILEARN_VERSION:-0.14.1}
if [ ! -f /usr/share/mricron/templates/aal.nii.gz ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mricron-data >/dev/null
  else
    echo "mricron-data is not installed: run 'sudo apt-get install mricron-data'" >&2; exit 1
  fi
fi
mkdir -p "$dest"
if [ ! -f "$dest/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --disable-pip-version-check --no-deps "nilearn==$nilearn_version" -d "$tmp"
  python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/nilearn-*.whl")[0]
with zipfile.ZipFile(wheel) as archive:
    for kind in ("t1", "gm", "wm"):
        name = f"nilearn/datasets/data/mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
        with open(f"{sys.argv[2]}/{name.rsplit('/', 1)[1]}", "wb") as out:
            out.write(archive.read(name))
PY
  echo "nilearn $nilearn_version" > "$dest/SOURCE"
fi
# pip cannot download these sdists without building them (pyradiomics' build needs its build
# dependencies), so they come from PyPI's JSON API, checked against a pinned sha256
python3 - "$dest" <<'PY'
import hashlib, io, json, sys, tarfile, urllib.request
from pathlib import Path

dest = Path(sys.argv[1])
SDISTS = {  # (name, version): (sha256, prefix in the archive, members to unpack, folder under dest)
    ("TotalSegmentator", "2.18.0"): (
        "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03", "totalsegmentator-2.18.0/",
        ["LICENSE", "tests/reference_files/example_ct_sm.nii.gz", "tests/reference_files/example_seg.nii.gz",
         "tests/reference_files/example_seg_dicom.nii.gz", "tests/reference_files/example_ct_dicom/"],
        "totalsegmentator-2.18.0"),
    ("pyradiomics", "3.1.0"): (
        "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4", "pyradiomics-3.1.0/",
        ["LICENSE.txt", "data/README.md"] + [f"data/{c}_{k}.nrrd" for c in ("lung1", "lung2", "brain1", "brain2", "breast1")
                                             for k in ("image", "label")],
        "pyradiomics-3.1.0"),
}
for (name, version), (sha256, prefix, members, folder) in SDISTS.items():
    target = dest / folder
    if (target / "SOURCE").is_file():
        continue
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json") as response:
        urls = json.load(response)["releases"][version]
    url = next(u["url"] for u in urls if u["packagetype"] == "sdist")
    with urllib.request.urlopen(url) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        sys.exit(f"{name} {version} sdist: sha256 mismatch")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            relative = member.name[len(prefix):] if member.name.startswith(prefix) else None
            if not member.isfile() or relative is None or not any(
                    relative == m or (m.endswith("/") and relative.startswith(m)) for m in members):
                continue
            out = target / Path(relative).name if not relative.startswith("tests/reference_files/example_ct_dicom/") \
                else target / "example_ct_dicom" / Path(relative).name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.extractfile(member).read())
    (target / "SOURCE").write_text(f"{name} {version} sdist from PyPI, sha256 {sha256}\n")
PY
echo "real benchmark images: /usr/share/mricron/templates and $dest"

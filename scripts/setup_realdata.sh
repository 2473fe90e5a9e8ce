#!/usr/bin/env bash
# Install the real images of the development benchmark (scripts/bench_real.py); benchmark-only, never
# a segkit runtime dependency. Sources (provenance and licences: docs/dependencies.md):
#   - Debian package mricron-data: Colin27 T1 head (ch2, ch2bet, ch2better) and the AAL atlas labels,
#     installed under /usr/share/mricron/templates;
#   - the nilearn wheel from PyPI (not installed, only unpacked): the ICBM 2009a MNI152 T1 template
#     and its grey/white-matter probability maps, copied to $SEGKIT_REALDATA (default ~/.cache/segkit-realdata).
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
echo "real benchmark images: /usr/share/mricron/templates and $dest"

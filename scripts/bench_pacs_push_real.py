"""#28 "Push" with real MR volumes: 12 real T1 MR series stored into a real Orthanc, routed by Orthanc to the
DICOM node, one SEG each counted back by query, each SEG checked by dicom3tools' dciodvfy.

The volumes are the real MR images scripts/setup_realdata.sh installs (provenance in docs/dependencies.md):
Colin27 head (ch2), skull-stripped (ch2bet), re-processed at 0.5 mm (ch2better), and the ICBM 2009a MNI152
template; each resampled to 1 x 1 x 3 mm (a thick-slice clinical protocol) and written as a DICOM series in
scanner order three ways: axial (ImageOrientationPatient 1\\0\\0\\0\\1\\0), axial with rows and columns
flipped (RAS), and sagittal. The node runs in-process with an untrained one-channel U-Net (what is measured
here is the plumbing, not the labels: `tests/pacs/test_node.py` checks the side of Left-* labels with a trained
model). Needs Orthanc (`apt-get install -y orthanc orthanc-dicomweb dicom3tools`).

    python scripts/bench_pacs_push_real.py --out docs/benchmarks/pacs_push_real.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from bench_pacs import make_model
from realdata import MNI_T1, MRICRON, REALDATA, missing_sources

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pacs_helpers import ORTHANC_BINARY, Orthanc, dciodvfy_errors, free_port  # noqa: E402

from segkit.io.dicom_write import new_uid, write_dicom_series  # noqa: E402
from segkit.io.image import Geometry  # noqa: E402
from segkit.jsonio import write_json  # noqa: E402
from segkit.pacs.config import load_config  # noqa: E402
from segkit.pacs.node import Node, status_summary  # noqa: E402

SOURCES = {"colin27_head": MRICRON / "ch2.nii.gz", "colin27_brain": MRICRON / "ch2bet.nii.gz",
           "colin27_better": MRICRON / "ch2better.nii.gz", "mni152": REALDATA / MNI_T1}
STORAGES = ("LPS", "RAS", "PIL")     # axial scanner order, axial flipped in-plane, sagittal


def real_volume(path: Path, storage: str) -> tuple[np.ndarray, Geometry]:
    """A real MR volume resampled to 1 x 1 x 3 mm (x, y, z), intensities 0-1000, stored as `storage`."""
    image = sitk.DICOMOrient(sitk.ReadImage(str(path), sitk.sitkFloat32), "LPS")
    spacing = (1.0, 1.0, 3.0)
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    image = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                          image.GetDirection(), 0.0, sitk.sitkFloat32)
    image = sitk.DICOMOrient(image, storage)
    array = sitk.GetArrayFromImage(image)
    array = np.clip(array / max(float(np.percentile(array, 99.5)), 1e-6), 0, 1.2) * 1000
    return array, Geometry(image.GetSpacing(), image.GetOrigin(), image.GetDirection(), image.GetSize())


def main() -> int:
    """Run the push and print (and optionally write) the JSON result; 1 when a series lacks exactly one valid SEG."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--wait", type=float, default=1800.0, help="seconds to wait for the node")
    args = parser.parse_args()
    if missing_sources() or ORTHANC_BINARY is None:
        raise SystemExit("needs scripts/setup_realdata.sh and Orthanc: " + ", ".join(missing_sources() or ["Orthanc"]))
    work = Path(tempfile.mkdtemp(prefix="bench_pacs_push_real_"))
    model = make_model(work / "model", [4, 8, 16], [16, 64, 64])
    orthanc = Orthanc(work / "orthanc")
    port = free_port()
    config = work / "node.toml"
    config.write_text(f'[node]\nae_title = "SEGKIT"\nhost = "127.0.0.1"\nport = {port}\nstorage = "storage"\n'
                      f'quiet_seconds = 2\nmin_free_mb = 100\n\n[model]\npath = "{model}"\ndevice = "cpu"\n'
                      f'tta = false\nthreads = 1\n\n[[peers]]\nae_title = "{orthanc.aet}"\n\n'
                      f'[destination]\nae_title = "{orthanc.aet}"\nhost = "127.0.0.1"\nport = {orthanc.dicom_port}\n')
    node = Node(load_config(config))
    series: dict[str, dict] = {}
    try:
        node.start()
        orthanc.add_modality("segkit", "SEGKIT", node.port)
        for name, path in SOURCES.items():
            for storage in STORAGES:
                array, geometry = real_volume(path, storage)
                uid = new_uid()
                files = write_dicom_series(array, geometry, work / "series" / f"{name}_{storage}", f"T1 {name}",
                                           series_uid=uid, study_uid=new_uid(), patient_id=f"{name}_{storage}")
                series[uid] = {"source": name, "storage": storage, "slices": len(files),
                               "shape_zyx": list(array.shape), "orthanc_id": orthanc.upload_series(files)}
        start = time.time()
        orthanc.route("segkit", [s["orthanc_id"] for s in series.values()])
        deadline = time.time() + args.wait
        while time.time() < deadline:
            counts = node.journal.counts()
            if counts["done"] + counts["failed"] >= len(series) and status_summary(node.journal)["queue_depth"] == 0:
                break
            time.sleep(1)
        elapsed = time.time() - start
        units = {unit.key: unit for unit in node.journal.units()}
        references = orthanc.seg_references()
        errors = {}
        for uid, info in series.items():
            info["segs_in_orthanc"] = len(references.get(uid, []))
            info["state"] = units[uid].state if uid in units else "missing"
            info["predict_s"] = round(units[uid].predict_seconds or 0, 1) if uid in units else None
            for index, sop in enumerate(references.get(uid, [])):
                instance = orthanc.request("POST", "/tools/lookup", raw=sop.encode())[0]["ID"]
                seg = work / f"seg_{uid}_{index}.dcm"
                seg.write_bytes(orthanc.get(f"/instances/{instance}/file"))
                errors[uid] = dciodvfy_errors(seg) if shutil.which("dciodvfy") else ["dciodvfy not installed"]
            info["dciodvfy_errors"] = len(errors.get(uid, []))
    finally:
        node.stop()
        orthanc.stop()
    result = {"series": len(series), "routed_to_done_s": round(elapsed, 1),
              "series_with_exactly_one_seg": sum(s["segs_in_orthanc"] == 1 for s in series.values()),
              "segs_with_dciodvfy_errors": sum(bool(e) for e in errors.values()),
              "first_errors": {uid: e[:3] for uid, e in errors.items() if e},
              "per_series": list(series.values()),
              "machine": f"{platform.machine()} {os.cpu_count()} cores", "load_average_1_5_15": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for info in result["per_series"]:
        info.pop("orthanc_id")
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    ok = result["series_with_exactly_one_seg"] == len(series) and not result["segs_with_dciodvfy_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

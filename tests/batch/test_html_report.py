"""report.html: rendered from report.json alone, offline, sortable; the real page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from batch_data import FunctionEngine, make_broken_batch, threshold_predict
from browser import Chromium, find_chromium

from segkit.batch.cases import InputSpec, discover_cases
from segkit.batch.html_report import EMBED_LIMIT_BYTES, html_name, render_html, write_html_report
from segkit.batch.outputs import OutputRequest
from segkit.batch.pipeline import RunOptions, predict_cases
from segkit.batch.report import merge_reports, read_report
from segkit.io.dicom_seg import segment_names

LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
SPEC_2CH = InputSpec(num_channels=2, channel_names=("T1", "FLAIR"), channel_map={0: "T1*", 1: "FLAIR*"})
RUN_INFO = {"model": "/models/threshold.zip", "configuration": "3d_fullres", "folds": ["0", "1"], "labels": LABELS,
            "options": {"precision": "auto", "tta": True}, "backend": {"device": "cpu", "torch": "2.x",
                                                                       "precision": "fp32"}}


def fake_report(cases: list[dict]) -> dict:
    """A minimal report dict around case entries."""
    return {"schema_version": 1, "state": "complete", "labels": LABELS, "model": "m", "warnings": ["run <warning>"],
            "totals": {"cases": len(cases), "pending": 0}, "cases": cases}


def case(case_id: str, status: str = "ok", score: float | None = None, flagged: bool = False, **extra) -> dict:
    """One case entry."""
    entry = {"case_id": case_id, "status": status, "reason": None, "seconds": 1.0, "outputs": {}, "warnings": [],
             **extra}
    if score is not None:
        entry["uncertainty"] = {"score": score, "flagged": flagged, "threshold": 0.2}
    return entry


def test_rows_put_failed_then_flagged_first_and_escape_every_text():
    report = fake_report([case("a_ok", score=0.05), case("b_flag", score=0.3, flagged=True),
                          case("c_worse", score=0.5, flagged=True),
                          case("d_<bad>", "failed", reason="unreadable <script>alert(1)</script>"),
                          case("e_vol", volumes_ml={"edema": 12.345}, warnings=["input is 30.0 degrees oblique"])])
    page = render_html(report, {})
    order = re.findall(r'<tr class="row [^"]*" data-case="([^"]+)"', page)
    assert order == ["d_&lt;bad&gt;", "c_worse", "b_flag", "a_ok", "e_vol"]
    assert "<script>alert(1)" not in page and "unreadable &lt;script&gt;" in page
    assert "run &lt;warning&gt;" in page
    assert '<td data-sort="12.345" class="num">12.35</td>' in page
    assert "30.0 degrees oblique" in page
    assert re.search(r'<b>2</b><span>flagged for review</span>', page)
    assert "http://" not in page and "https://" not in page   # nothing fetched from a network


def test_pictures_are_embedded_until_the_limit_then_linked(tmp_path, monkeypatch):
    (tmp_path / "a_qc.png").write_bytes(b"\x89PNG fake")
    report = fake_report([case("a", outputs={"qc": "a_qc.png"})])
    page = write_html_report(report, tmp_path).read_text()
    assert 'src="data:image/png;base64,' in page
    monkeypatch.setattr("segkit.batch.html_report.EMBED_LIMIT_BYTES", 4)
    page = write_html_report(report, tmp_path).read_text()
    assert 'src="a_qc.png"' in page
    assert EMBED_LIMIT_BYTES > 4


def test_report_html_is_written_beside_each_report_and_the_merged_one(tmp_path):
    folder = tmp_path / "in"
    from batch_data import write_file_case
    for index in range(3):
        write_file_case(folder, f"c{index}", seed=index)
    out = tmp_path / "out"
    request = OutputRequest(out, LABELS, segment_names(LABELS), qc_image=True)
    for part in range(2):
        predict_cases(FunctionEngine(threshold_predict), discover_cases(folder), SPEC_2CH, request,
                      RunOptions(num_parts=2, part_id=part, run_info=RUN_INFO), folder)
    assert html_name("report_part1.json") == "report_part1.html"
    assert (out / "report_part0.html").is_file() and (out / "report_part1.html").is_file()
    merge_reports(out)
    page = (out / "report.html").read_text()
    assert len(re.findall(r'<tr class="row ok"', page)) == 3
    merged = read_report(out / "report.json")
    assert all(c["outputs"]["qc"] == f'{c["case_id"]}_qc.png' and c["volumes_ml"]["edema"] > 0
               for c in merged["cases"])


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory) -> Path:
    """The 10-case batch with 3 broken cases, predicted; its output folder."""
    root = tmp_path_factory.mktemp("html")
    make_broken_batch(root / "in")
    request = OutputRequest(root / "out", LABELS, segment_names(LABELS), qc_image=True)
    predict_cases(FunctionEngine(threshold_predict), discover_cases(root / "in"), SPEC_2CH, request,
                  RunOptions(run_info=RUN_INFO), root / "in")
    return root / "out"


CHROMIUM = find_chromium()
ROWS = "Array.from(document.querySelectorAll('#cases tbody tr'))"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (apt-get install chromium; "
                                             "scripts/test.sh installs it when run as root)")
def test_report_html_in_headless_chromium(broken_run, tmp_path):
    # the page alone, copied elsewhere, must still show everything: the pictures are inside it
    page_path = tmp_path / "report.html"
    shutil.copy(broken_run / "report.html", page_path)
    report = json.loads((broken_run / "report.json").read_text())
    with Chromium(CHROMIUM) as browser:
        page = browser.new_page()
        page.navigate(page_path.as_uri())
        rows = page.evaluate(f"{ROWS}.map(r => [r.dataset.case, r.cells[1].innerText, r.cells[2].innerText])")
        statuses = [status for _, status, _ in rows]
        assert statuses.count("ok") == 7 and statuses.count("failed") == 3 and len(rows) == 10
        reasons = {case_id: reason for case_id, status, reason in rows if status == "failed"}
        expected = {c["case_id"]: c["reason"] for c in report["cases"] if c["status"] == "failed"}
        assert reasons == expected and all(reasons.values())
        assert "truncated" in reasons["bad_truncated"] and "empty folder" in reasons["bad_empty"]
        widths = page.evaluate("Array.from(document.querySelectorAll('img.thumb')).map(i => "
                               "[i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(widths) == 7 and all(done and width > 0 and height > 0 for done, width, height in widths)
        cards = page.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('.card'))"
                              ".map(c => [c.dataset.count, c.querySelector('b').innerText]))")
        assert cards == {"ok": "7", "failed": "3", "skipped": "0", "flagged": "0"}
        # sorting: a real click on the edema header sorts by volume, a second click reverses it
        edema = next(i for i, c in enumerate(report["labels"]) if c == "edema") - 1 + 3
        page.click(f'th[data-col="{edema}"]')
        ordered = page.evaluate(f"{ROWS}.map(r => r.dataset.case)")
        volumes = {c["case_id"]: c["volumes_ml"]["edema"] for c in report["cases"] if c["status"] == "ok"}
        assert ordered[:7] == sorted(volumes, key=volumes.get) and set(ordered[7:]) == set(expected)
        page.click(f'th[data-col="{edema}"]')
        ordered = page.evaluate(f"{ROWS}.map(r => r.dataset.case)")
        assert ordered[:7] == sorted(volumes, key=volumes.get, reverse=True)
        page.click('th[data-col="0"]')
        assert page.evaluate(f"{ROWS}.map(r => r.dataset.case)") == sorted(c["case_id"] for c in report["cases"])
        # a click on a thumbnail opens the full picture
        page.click("img.thumb")
        assert page.evaluate("document.getElementById('viewer').classList.contains('open')")
        assert page.evaluate("document.getElementById('viewer-img').naturalWidth") > 0
        assert page.errors() == []

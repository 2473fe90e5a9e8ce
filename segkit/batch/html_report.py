"""report.html: the reviewer's page of a batch run, written from report.json's data (owner of the format).

One self-contained, offline file beside report.json: inline CSS and a small inline script, a
Content-Security-Policy that forbids any network fetch, and the per-case QC pictures
(`CASE_qc.png`, `segkit.batch.thumbnail`) embedded as data URIs while they total under
EMBED_LIMIT_BYTES (else referenced next to the page). It shows

- a summary: cases ok, failed, skipped and flagged for review; the model, configuration,
  folds, checkpoint, precision (asked and used), device and torch version; run warnings;
- one row per case: status and reason, volume per structure in mL, warnings (orientation,
  obliquity, spacing or intensity outside the training range), the uncertainty score and
  whether it is above the model's review threshold, and the QC thumbnail (patient frame,
  orientation letters);
- a table sortable by any column (click a header; again to reverse) and a click on a
  thumbnail that opens the case's full preview (the matplotlib ``CASE_preview.png`` when the
  run wrote one, else the QC picture enlarged).

The page is rendered from the report alone (plus the picture files it names): nothing is
predicted or measured again. Default order: failed cases, then flagged ones by uncertainty,
then the rest, i.e. what a reviewer should look at first.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from segkit.batch.thumbnail import label_colour
from segkit.jsonio import atomic_path

EMBED_LIMIT_BYTES = 12 * 1024 ** 2   # QC pictures embedded up to this total; a larger run links the files
CSP = ("default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")


def html_name(report_file_name: str) -> str:
    """report.html beside report.json, report_part<K>.html beside report_part<K>.json."""
    return Path(report_file_name).with_suffix(".html").name


def structure_names(report: dict) -> list[str]:
    """The structures with volumes, in the model's label order (header 'labels'), else as first seen."""
    labels = report.get("labels") or {}
    names = [name for name, value in labels.items() if value not in (0, [0])]
    for case in report["cases"]:
        names += [name for name in case.get("volumes_ml") or {} if name not in names]
    return names


def _review_order(case: dict) -> tuple:
    """Failed first, then flagged by descending uncertainty, then the rest by case id."""
    uncertainty = case.get("uncertainty") or {}
    rank = 0 if case["status"] == "failed" else 1 if uncertainty.get("flagged") else 2
    return rank, -(uncertainty.get("score") or 0.0) if rank == 1 else 0.0, case["case_id"]


def _image_sources(report: dict, output_dir: Path) -> dict[str, str]:
    """case id -> img src of its QC picture: data URIs while they fit EMBED_LIMIT_BYTES, else relative paths."""
    files = {case["case_id"]: output_dir / case["outputs"]["qc"] for case in report["cases"]
             if (case.get("outputs") or {}).get("qc") and (output_dir / case["outputs"]["qc"]).is_file()}
    total = sum(path.stat().st_size for path in files.values())
    if total * 4 / 3 > EMBED_LIMIT_BYTES:
        return {case_id: path.name for case_id, path in files.items()}
    return {case_id: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
            for case_id, path in files.items()}


def _cell(text: str, sort: str | float | None = None, css: str = "") -> str:
    """A table cell with an optional sort key (numbers sort numerically, missing values last)."""
    key = "" if sort is None else f' data-sort="{html.escape(str(sort))}"'
    cls = f' class="{css}"' if css else ""
    return f"<td{key}{cls}>{text}</td>"


def _row(case: dict, structures: list[str], src: str | None, preview: str | None) -> str:
    """One case's table row."""
    esc = html.escape
    status = case["status"]
    uncertainty = case.get("uncertainty") or {}
    flagged = bool(uncertainty.get("flagged"))
    volumes = case.get("volumes_ml") or {}
    cells = [_cell(esc(case["case_id"]), case["case_id"], "case"),
             _cell(f'<span class="status {esc(status)}">{esc(status)}</span>', status),
             _cell(esc(case.get("reason") or ""), case.get("reason") or "", "reason")]
    for name in structures:
        value = volumes.get(name)
        cells.append(_cell("&ndash;" if value is None else f"{value:.2f}", value, "num"))
    score = uncertainty.get("score")
    cells.append(_cell("&ndash;" if score is None else f"{score:.3f}", score, "num"))
    review = "review" if flagged else ("" if score is None or uncertainty.get("threshold") is None else "no")
    cells.append(_cell(f'<span class="flag">{review}</span>' if flagged else review, 1 if flagged else 0))
    warnings = case.get("warnings") or []
    cells.append(_cell("<br>".join(esc(w) for w in warnings), len(warnings), "warnings"))
    cells.append(_cell(f'{case.get("seconds", 0):.1f}', case.get("seconds"), "num"))
    if src is None:
        cells.append(_cell("", None))
    else:
        full = esc(preview) if preview else ""
        cells.append(_cell(f'<img class="thumb" alt="QC preview of {esc(case["case_id"])}" src="{esc(src)}" '
                           f'data-full="{full}" data-case="{esc(case["case_id"])}">', None))
    classes = f"row {esc(status)}" + (" flagged" if flagged else "")
    return f'<tr class="{classes}" data-case="{esc(case["case_id"])}">' + "".join(cells) + "</tr>"


def _summary(report: dict) -> str:
    """The summary block: counts, model, precision and backend, warnings."""
    esc = html.escape
    cases = report["cases"]
    counts = {status: sum(c["status"] == status for c in cases) for status in ("ok", "failed", "skipped")}
    flagged = sum(bool((c.get("uncertainty") or {}).get("flagged")) for c in cases)
    pending = report["totals"].get("pending", 0)
    boxes = [("ok", counts["ok"]), ("failed", counts["failed"]), ("skipped", counts["skipped"]),
             ("flagged for review", flagged)] + ([("pending", pending)] if pending else [])
    cards = "".join(f'<div class="card {esc(name.split()[0])}" data-count="{esc(name.split()[0])}">'
                    f'<b>{value}</b><span>{esc(name)}</span></div>' for name, value in boxes)
    backend = report.get("backend") or {}
    options = report.get("options") or {}
    calibration = report.get("uncertainty_calibration") or {}
    facts = [("model", report.get("model")), ("configuration", report.get("configuration")),
             ("folds", ", ".join(map(str, report.get("folds") or [])) or None),
             ("checkpoint", report.get("checkpoint")),
             ("package sha256", (report.get("package_sha256") or "")[:16] or None),
             ("precision", _precision_text(options.get("precision"), backend.get("precision"))),
             ("backend", " ".join(str(v) for v in (backend.get("device") or report.get("device"),
                                                     _runtime_text(backend)) if v)),
             ("test-time mirroring", None if options.get("tta") is None else "on" if options["tta"] else "off"),
             ("post-processing", json.dumps(report["postprocessing"]) if report.get("postprocessing") else None),
             ("review threshold", _threshold_text(calibration) if calibration else None),
             ("segkit", report.get("segkit_version")), ("started", report.get("started")),
             ("finished", report.get("finished") or f'not finished ({report.get("state")})')]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts if v not in (None, ""))
    warnings = "".join(f"<li>{esc(w)}</li>" for w in report.get("warnings") or [])
    warning_block = f'<ul class="runwarnings">{warnings}</ul>' if warnings else ""
    return f'<section class="summary"><div class="cards">{cards}</div><table class="facts">{rows}</table>' \
           f'{warning_block}</section>'


def _runtime_text(backend: dict) -> str | None:
    """'torch 2.13.0', or 'onnxruntime 1.32.0' when an ONNX backend ran the network."""
    name = backend.get("name") or "torch"
    return f"{name} {backend[name]}" if backend.get(name) else None


def _precision_text(asked: str | None, used: str | None) -> str | None:
    """'auto (used: bf16)', 'fp32', or None when the report does not say."""
    if asked and used and asked != used:
        return f"{asked} (used: {used})"
    return used or asked


def _threshold_text(calibration: dict) -> str:
    """'0.123 (cross-validation: AUROC 0.81, precision 0.75, recall 0.80, 20 cases)'."""
    quality = calibration.get("quality") or {}
    parts = [f'{k} {quality[k]:.2f}' for k in ("auroc", "precision", "recall") if quality.get(k) is not None]
    if calibration.get("num_cases"):
        parts.append(f'{calibration["num_cases"]} cases')
    return f'{calibration.get("threshold", float("nan")):.3f}' + (f' (cross-validation: {", ".join(parts)})'
                                                                   if parts else "")


def render_html(report: dict, sources: dict[str, str]) -> str:
    """The whole page for a report dict and the img src of each case's QC picture."""
    esc = html.escape
    structures = structure_names(report)
    colours = {name: label_colour(i) for i, name in enumerate(structures)}
    headers = ["case", "status", "reason"] + [f"{name} (mL)" for name in structures] + \
              ["uncertainty", "review", "warnings", "seconds", "preview"]
    head_cells = []
    for index, title in enumerate(headers):
        swatch = ""
        if index - 3 in range(len(structures)):
            red, green, blue = colours[structures[index - 3]]
            swatch = f'<i class="swatch" style="background:rgb({red},{green},{blue})"></i>'
        sortable = ' class="sortable"' if title != "preview" else ""
        head_cells.append(f'<th{sortable} data-col="{index}">{swatch}{esc(title)}</th>')
    rows = "\n".join(_row(case, structures, sources.get(case["case_id"]),
                          (case.get("outputs") or {}).get("preview"))
                     for case in sorted(report["cases"], key=_review_order))
    title = f'segkit QC report: {report["totals"].get("cases", len(report["cases"]))} cases'
    return PAGE.format(csp=CSP, title=esc(title), summary=_summary(report), head="".join(head_cells), rows=rows,
                       style=STYLE, script=SCRIPT)


def write_html_report(report: dict, output_dir: str | Path, name: str = "report.html") -> Path:
    """Write report.html (or the part's page) into output_dir atomically from a report dict."""
    output_dir = Path(output_dir)
    page = render_html(report, _image_sources(report, output_dir))
    path = output_dir / name
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


STYLE = """
body{font:14px system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 12px}
.cards{display:flex;gap:10px;margin-bottom:10px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:90px}
.card b{display:block;font-size:24px}.card.failed b{color:#b00020}.card.flagged b{color:#b36b00}.card.ok b{color:#1b7f2a}
table.facts th{text-align:left;padding-right:12px;font-weight:600}table.facts td{color:#333}
.runwarnings{color:#b36b00}
table.cases{border-collapse:collapse;background:#fff;margin-top:12px}
table.cases th,table.cases td{border:1px solid #ddd;padding:4px 6px;vertical-align:middle}
table.cases th{background:#eee;position:sticky;top:0}
th.sortable{cursor:pointer;user-select:none}th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.reason,td.warnings{max-width:320px;font-size:12px}
.status{font-weight:600;padding:1px 6px;border-radius:4px}
.status.ok{background:#e3f4e6;color:#1b7f2a}.status.failed{background:#fbe4e7;color:#b00020}
.status.skipped{background:#eee;color:#555}
.flag{background:#fff0d6;color:#b36b00;font-weight:600;padding:1px 6px;border-radius:4px}
tr.flagged td.case{border-left:4px solid #e69500}tr.failed td.case{border-left:4px solid #b00020}
img.thumb{height:96px;cursor:zoom-in;image-rendering:pixelated;display:block}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
#viewer{position:fixed;inset:0;background:rgba(0,0,0,.85);display:none;align-items:center;justify-content:center;
flex-direction:column;color:#fff;cursor:zoom-out}
#viewer.open{display:flex}#viewer img{max-width:95vw;max-height:85vh;image-rendering:pixelated;background:#000}
"""

SCRIPT = """
(function(){
  var table=document.getElementById('cases'), body=table.tBodies[0];
  function key(row,col){
    var cell=row.cells[col], v=cell.getAttribute('data-sort');
    if(v===null||v===''||v==='None'){return null;}
    var n=Number(v); return isNaN(n)?v.toLowerCase():n;
  }
  function sortBy(th){
    var col=Number(th.getAttribute('data-col')), asc=!th.classList.contains('asc');
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc?'asc':'desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=key(a,col), y=key(b,col);
      if(x===null&&y===null){return 0;} if(x===null){return 1;} if(y===null){return -1;}
      if(typeof x!==typeof y){x=String(x);y=String(y);}
      var r=x<y?-1:x>y?1:0; return asc?r:-r;
    });
    rows.forEach(function(r){body.appendChild(r);});
  }
  Array.prototype.forEach.call(table.querySelectorAll('th.sortable'),function(th){
    th.addEventListener('click',function(){sortBy(th);});
  });
  var viewer=document.getElementById('viewer'), big=document.getElementById('viewer-img'),
      caption=document.getElementById('viewer-caption');
  function open(img){
    var full=img.getAttribute('data-full');
    big.src=full||img.src; caption.textContent=img.getAttribute('data-case')+(full?' (preview)':' (QC picture)');
    viewer.classList.add('open');
  }
  body.addEventListener('click',function(e){if(e.target.classList.contains('thumb')){open(e.target);}});
  viewer.addEventListener('click',function(){viewer.classList.remove('open');});
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){viewer.classList.remove('open');}});
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title><style>{style}</style></head>
<body><h1>{title}</h1>
{summary}
<table id="cases" class="cases"><thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
<div id="viewer"><img id="viewer-img" alt="full preview"><div id="viewer-caption"></div></div>
<script>{script}</script>
</body></html>
"""

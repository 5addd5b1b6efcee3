"""Each reviewer's packet: one self-contained HTML page with the anonymized reports and the review form.

``peer/<assignment>/reports/<code>.html`` is a report: all notebooks of the author's submission, one after the other,
anonymized (:mod:`.anonymize`) and converted with nbconvert's HTML exporter.  ``peer/<assignment>/packets/<reviewer>.html``
shows each report to review in a frame, with the criteria below it (points and a comment per graded task, an
overall comment); its *Save* button downloads ``peer-review-<assignment>.json``, which the reviewer uploads to the
learning platform (*Load* reads a saved file back, to go on or correct it).  It needs nothing but a browser, works
offline, and keeps scores in range while the reviewer types; the page names neither the reviewer nor the authors,
only the report codes and a token that ties the file to the packet.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..pages import render
from . import store
from .anonymize import Scrubber, anonymize


def report_notebook(root: Path, draw: store.Draw, code: str, scrub: Scrubber):
    """The report ``code``: the author's notebooks of the assignment in order, anonymized, as one notebook."""
    author = draw.authors[code]
    merged = nbformat.v4.new_notebook()
    number = 1
    for notebook in dict.fromkeys(c.notebook for c in draw.criteria):
        merged.cells.append(nbformat.v4.new_markdown_cell(f"# Notebook `{notebook}`"))
        path = root / "submitted" / author / draw.assignment / f"{notebook}.ipynb"
        if not path.exists():
            merged.cells.append(nbformat.v4.new_markdown_cell("*Not handed in.*"))
            continue
        try:
            clean = anonymize(nbformat.read(path, as_version=4), scrub, number)
        except Exception as error:  # noqa: BLE001 - an unreadable upload: say so in its place
            merged.cells.append(nbformat.v4.new_markdown_cell(f"*This notebook could not be read ({type(error).__name__}).*"))
            continue
        number += len(clean.cells)
        merged.cells.extend(clean.cells)
    for i, cell in enumerate(merged.cells):
        cell.id = f"cell-{i + 1}"
    merged.metadata = anonymize(nbformat.v4.new_notebook(), scrub).metadata
    return merged


def write_report(root: Path, draw: store.Draw, code: str, scrub: Scrubber) -> Path:
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter(template_name="lab").from_notebook_node(
        report_notebook(root, draw, code, scrub), resources={"metadata": {"name": f"{draw.assignment}: report {code}"}})
    path = store.folder(root, draw.assignment) / "reports" / f"{code}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def form_file(assignment: str) -> str:
    return f"peer-review-{assignment}.json"


def write_packet(root: Path, draw: store.Draw, reviewer: str) -> Path:
    """``packets/<reviewer>.html`` from the reports in ``reports/`` (written first by :func:`write_report`)."""
    base = store.folder(root, draw.assignment)
    codes = sorted(draw.reviews[reviewer], key=lambda c: (draw.reviews[reviewer][c], c))
    reports = [{"code": code, "html": (base / "reports" / f"{code}.html").read_text(encoding="utf-8")}
               for code in codes]
    packet = {"form": "coursekit-peer-review", "assignment": draw.assignment, "token": draw.tokens[reviewer],
              "reports": codes, "criteria": [c.task for c in draw.criteria], "filename": form_file(draw.assignment)}
    path = base / "packets" / f"{reviewer}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render("peer-form.html.j2", assignment=draw.assignment, criteria=draw.criteria, reports=reports,
                           packet=packet), encoding="utf-8")
    return path


def write(root: Path, draw: store.Draw, scrub: Scrubber, codes=None, reviewers=None) -> list[Path]:
    """The reports ``codes`` (default: all) and the packets of ``reviewers`` (default: all)."""
    for code in (draw.authors if codes is None else codes):
        write_report(root, draw, code, scrub)
    return [write_packet(root, draw, r) for r in sorted(draw.reviews if reviewers is None else reviewers)]

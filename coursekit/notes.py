"""What grading writes into a graded notebook, in one place: the kit's metadata (``nb.metadata["coursekit"]``)
that the grading report reads, and the cells at the top that the student and the graders see.

* :func:`record` an event (a repair, a crash, a timeout, restored tampering); :func:`show_events` turns the
  events into the "Notes from grading" cell at the top, which the feedback shows;
* :func:`set_value` / :func:`append` other findings for the report (flags, tampering, seconds, memory);
* :func:`add_table_style`: a last cell whose CSS gives markdown tables borders and spacing in the formgrader
  (mark schemes) and the feedback.
"""

from __future__ import annotations

from nbformat.v4 import new_markdown_cell

KEY = "coursekit"
NOTE_HEADING = "**Notes from grading**"
TABLE_STYLE = ("<style>.rendered_html table, .text_cell_render table, .jp-RenderedMarkdown table, .jp-RenderedHTMLCommon "
               "table {border-collapse: collapse; margin: 0.5em 0;} .rendered_html th, .rendered_html td, .text_cell_render "
               "th, .text_cell_render td, .jp-RenderedMarkdown th, .jp-RenderedMarkdown td, .jp-RenderedHTMLCommon th, "
               ".jp-RenderedHTMLCommon td {border: 1px solid #bbb; padding: 3px 8px; text-align: left;}</style>")


def findings(nb) -> dict:
    """The kit's metadata of a notebook (created when missing)."""
    return nb.metadata.setdefault(KEY, {})


def set_value(nb, key: str, value) -> None:
    findings(nb)[key] = value


def append(nb, key: str, entry) -> None:
    findings(nb).setdefault(key, []).append(entry)


def record(nb, kind: str, text: str) -> None:
    """Remember an event for the grading report; the student sees it in the note at the top."""
    append(nb, "events", {"kind": kind, "text": text})


def add_note(nb, text: str) -> None:
    """Add a line to the grading note at the top of the notebook (created when needed)."""
    first = nb.cells[0] if nb.cells else None
    if first is None or not first.get("metadata", {}).get("coursekit_note"):
        first = new_markdown_cell(NOTE_HEADING + "\n")
        first.metadata["coursekit_note"] = True
        nb.cells.insert(0, first)
    first.source += f"\n- {text}"


def show_events(nb) -> None:
    """The recorded events as the note at the top (only after execution: a new cell would shift the indices)."""
    for event in findings(nb).get("events", []):
        add_note(nb, event["text"])


def add_table_style(nb) -> None:
    """A last cell with :data:`TABLE_STYLE`, once (invisible: a style element only; it applies to the whole page)."""
    if not any(cell.get("metadata", {}).get("coursekit_style") for cell in nb.cells):
        cell = new_markdown_cell(TABLE_STYLE)
        cell.metadata["coursekit_style"] = True
        nb.cells.append(cell)

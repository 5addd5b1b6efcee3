"""A report without anything that names its author, for the reviewers.

:func:`anonymize` returns a copy of a notebook with

* no notebook or cell metadata (nbgrader's and the kit's, Colab's with the e-mail address and the Drive file id,
  the kernel's), cell ids renumbered, output metadata dropped, widget outputs dropped;
* in every cell's source, every output's text (plain, HTML, SVG, JSON, tracebacks) and attachment name:
  e-mail addresses, absolute file paths (``/home/<id>/...``, ``/content/drive/...``, ``C:\\Users\\<name>\\...``,
  ``~/...``) and the rest of lines such as "Name: ...", "Student ID: ...", "Author: ..." replaced;
  every student's id, e-mail address and full name (any case), and their first and last names as written
  (capitalized or in capitals, as a word) replaced by ``[removed]``.  Names are matched only as written so that
  code such as ``torch.max`` stays readable when a student is called Max.

Images in outputs (PNG, JPEG, GIF) are kept as they are: text drawn in a plot is not searched.
"""

from __future__ import annotations

import re
from typing import Iterable

import nbformat

from ..release import is_added

REMOVED = "[removed]"
IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
DROPPED_OUTPUTS = {"application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ANSI_SPLIT = re.compile(r"(\x1b\[[0-9;]*[A-Za-z])")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
DRIVE = re.compile(r"/content/drive/[^\n'\"`<>]*")  # Colab's Drive: folder names hold spaces ("Colab Notebooks")
UNIX_PATH = re.compile(r"(?<![\w/:.)\]}>])(?:~/[\w.\-@+%~]+(?:/[\w.\-@+%~]*)*|/(?:[\w.\-@+%~]+/)+[\w.\-@+%~]*)")
WINDOWS_PATH = re.compile(r"(?<![\w])[A-Za-z]:(?:\\{1,2}[^\\\s'\"<>|:*?]+)+\\{0,2}")
LABEL = (r"(?:full\s+name|(?:first|last|family|given)\s+name|name|student(?:\s*(?:id|number|no\.?))?|"
         r"matriculation\s+number|matrikel(?:nummer|nr\.?)?|authors?|e-?mail|user\s*name)")
LABEL_LINE = re.compile(rf"(?im)^([ \t>#*_\-]*{LABEL}[*_ \t]*:[*_ \t]*)\S.*$")
LABEL_COMMENT = re.compile(rf"(?im)^([ \t]*#+[ \t]*{LABEL}[*_ \t]*:[ \t]*)\S.*$")  # in code: comment lines only


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _bounded(words: Iterable[str], flags=0) -> re.Pattern | None:
    """``words`` as whole words (not inside a longer run of letters and digits; ``_`` counts as a boundary)."""
    words = [w for w in words if w]
    return re.compile(rf"(?<![^\W_])(?:{_alternation(words)})(?![^\W_])", flags) if words else None


class Scrubber:
    """Replaces what identifies students in text (see the module docstring).

    ``students``: ``{student id: {"first_name", "last_name", "email"}}``; ``extra``: more identifiers, matched like
    ids (user names, the learning platform's ids, names from an id file)."""

    def __init__(self, students: dict[str, dict[str, str]], extra: Iterable[str] = ()):
        exact, parts = set(extra), set()
        for student_id, info in students.items():
            first, last = (info.get("first_name") or "").strip(), (info.get("last_name") or "").strip()
            exact.update({student_id, info.get("email") or ""})
            if first and last:
                exact.update({f"{first} {last}", f"{last} {first}", f"{last}, {first}", f"{first}_{last}",
                              f"{last}_{first}", f"{first}.{last}"})
            for name in (first, last):
                for part in [name, *name.split()]:
                    if len(part) >= 2:
                        parts.update({part, part.upper()})
        self.exact = _bounded({w.strip() for w in exact if len(w.strip()) >= 2}, re.I)
        self.parts = _bounded(parts)

    def text(self, text: str, kind: str = "markdown") -> str:
        """``text`` scrubbed; ``kind`` "code" replaces label lines only in comments.  Between the colour codes of a
        traceback each piece is scrubbed on its own."""
        if "\x1b[" in text:
            return "".join(piece if ANSI.fullmatch(piece) else self.text(piece, kind) for piece in ANSI_SPLIT.split(text))
        text = EMAIL.sub("[email]", text)
        text = DRIVE.sub("[path]", text)
        text = WINDOWS_PATH.sub("[path]", text)
        text = UNIX_PATH.sub("[path]", text)
        text = (LABEL_COMMENT if kind == "code" else LABEL_LINE).sub(lambda m: m.group(1) + REMOVED, text)
        for pattern in (self.exact, self.parts):
            if pattern is not None:
                text = pattern.sub(REMOVED, text)
        return text

    def value(self, value, kind: str = "output"):
        """Every string in a JSON value scrubbed (keys too), images left as they are."""
        if isinstance(value, str):
            return self.text(value, kind)
        if isinstance(value, list):
            return [self.value(v, kind) for v in value]
        if isinstance(value, dict):
            return {self.text(k, kind): (v if k in IMAGES else self.value(v, kind)) for k, v in value.items()}
        return value


def _output(output, scrub: Scrubber):
    output = dict(output)
    output.pop("metadata", None)
    if "data" in output:
        output["data"] = {k: v for k, v in output["data"].items() if k not in DROPPED_OUTPUTS}
        if not output["data"]:
            return None
    if output.get("output_type") in ("display_data", "execute_result"):
        output["metadata"] = {}
    return nbformat.from_dict(scrub.value(output))


def anonymize(nb, scrub: Scrubber, number_from: int = 1):
    """A copy of notebook ``nb`` without metadata, identifying text and the kit's added cells; cell ids ``cell-<n>``
    from ``number_from``."""
    clean = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"},
                                               "language_info": {"name": "python"}})
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell,
            "raw": nbformat.v4.new_raw_cell}
    # the kit's own cells (the Colab badge, the check before upload) are alike in every report, and the check's output
    # may name the student's file: left out
    for i, cell in enumerate([c for c in nb.cells if not is_added(c)], start=number_from):
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        new = make.get(cell.cell_type, nbformat.v4.new_raw_cell)(scrub.text(source, cell.cell_type))
        new.id = f"cell-{i}"
        if cell.cell_type == "code":
            new.execution_count = cell.get("execution_count")
            new.outputs = [o for o in (_output(o, scrub) for o in cell.get("outputs", [])) if o is not None]
        if cell.get("attachments") and cell.cell_type in ("markdown", "raw"):
            new.attachments = scrub.value(cell.attachments)
        clean.cells.append(new)
    return clean

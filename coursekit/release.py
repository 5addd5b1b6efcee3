"""What the release adds for the students: an "Open in Colab" badge on top and the check before upload at the end.

``AddStudentCells`` runs inside ``nbgrader generate_assignment`` (``c.GenerateAssignment.preprocessors`` in
``nbgrader_config.py``), after the solutions are cleared and before nbgrader saves the cells to the gradebook, so
the cells it adds are read-only cells like the others: the grader restores them when a student changed them, and
the repair step puts them back when a student deleted them.  Source notebooks do not hold these cells; this module
is their one source of truth.

* The badge links to the notebook on Colab, from the course's public repository: ``c.CourseKit.public_repository``
  (``https://github.com/OWNER/REPO``, or ``.../tree/BRANCH``; the public copy keeps the ``release/<assignment>/``
  folders).  Without that setting there is no badge.
* The check (``coursekit/kernel/upload_check.py``, embedded verbatim) runs without the kit and without installing
  anything; the release embeds what it needs to know about the released cells in a ``RELEASED = {...}`` manifest:
  every cell's grade id, kind, task and a checksum of its released text (never anything of the hidden tests, which
  are gone from the release before the checksums are taken).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor

from .course import Layout, cells_with_tasks
from .kernel import upload_check

CHECKER = Path(upload_check.__file__)
MARKER = "# ---- the cell's code starts here ----"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SUFFIXES = {"badge": "_open_in_colab", "heading": "_before_upload", "check": "_check_before_upload"}

# The versions of torch and torchvision the notebooks are tested with: the oldest is requirements-oldest.txt's
# (tests/test_student_side.py runs the solutions with it), the newest requirements.txt's.  Every source notebook's
# setup cell starts with VERSION_CHECK, which warns the student outside this range (a test keeps them the same).
SUPPORTED = {"torch": ("2.5", "2.14"), "torchvision": ("0.20", "0.29")}
VERSION_CHECK = '''\
# The versions this notebook is tested with: a warning below when yours are older (or newer).
import re
from importlib import metadata
for _package, _tested in {supported}.items():
    try:
        _have = metadata.version(_package)
    except metadata.PackageNotFoundError:  # not installed: this notebook does not use it
        continue
    _oldest, _mine, _newest = (tuple(int(n) for n in re.findall(r"\\d+", v)[:2])
                               for v in (_tested[0], _have, _tested[1]))
    if _mine < _oldest:
        print(f"WARNING: {{_package}} {{_have}} is older than {{_tested[0]}}, the oldest version this notebook is "
              "tested with: a cell may fail because of that, not because of your answer. Use Colab, or update "
              "(pip install --upgrade torch torchvision).")
    elif _mine > _newest:
        print(f"Note: {{_package}} {{_have}} is newer than {{_tested[1]}}, the newest version this notebook is "
              "tested with.")
'''.format(supported=repr(SUPPORTED).replace("'", '"'))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_added(cell) -> bool:
    """Whether ``cell`` is one of the cells this module adds to the release."""
    grade_id = _meta(cell).get("grade_id") or ""
    return any(grade_id.endswith(suffix) for suffix in SUFFIXES.values())


def prefix(nb, notebook: str) -> str:
    """The prefix of the notebook's grade ids ("gradcam" for gradcam_setup, gradcam_c_model, ...)."""
    ids = [_meta(c)["grade_id"] for c in nb.cells if _meta(c).get("grade_id") and not is_added(c)]
    return ids[0].split("_")[0] if ids else re.sub(r"\W", "_", notebook)


def kind(cell) -> str:
    """given, visible (a visible test: a read-only code cell whose first line is "# Visible test..."), tests
    (a grade cell), code or text (answer cells)."""
    meta = _meta(cell)
    if meta.get("solution"):
        return "code" if cell.cell_type == "code" else "text"
    if meta.get("grade"):
        return "tests"
    if cell.cell_type == "code" and cell.source.lstrip().lower().startswith("# visible test"):
        return "visible"
    return "given"


def manifest(release_nb, assignment: str, notebook: str) -> dict:
    """What the check needs to know about the released notebook (cells as in the release, without hidden tests)."""
    entries = []
    for task, cell in cells_with_tasks(release_nb):
        meta = _meta(cell)
        if not meta.get("grade_id") or is_added(cell):
            continue
        names = re.findall(r"^(?:def|class)\s+(\w+)", cell.source, re.M) if meta.get("solution") else []
        digest = cell.cell_type[0] + upload_check.fingerprint(cell.source)  # "c..." or "m...": code or markdown
        entries.append([meta["grade_id"], kind(cell), task or "", digest, names])
    stem = prefix(release_nb, notebook)
    return {"assignment": assignment, "notebook": notebook, "check_id": stem + SUFFIXES["check"],
            "added": [stem + suffix for suffix in SUFFIXES.values()], "cells": entries}


def check_source(released: dict) -> str:
    """The text of the check cell: Colab's form title, what it does, the manifest, the checker, the call."""
    code = CHECKER.read_text()
    body = code[code.index(MARKER) + len(MARKER):].strip("\n")
    cells = ",\n".join("    " + json.dumps(entry) for entry in released["cells"])
    head = {k: v for k, v in released.items() if k != "cells"}
    manifest_text = json.dumps(head)[:-1] + ', "cells": [\n' + cells + "\n]}"
    return ('#@title Check before you upload { display-mode: "form" }\n'
            "# Lists what is still missing before you upload this notebook: answers not done, visible tests\n"
            "# that fail, cells deleted or without their grading information, a renamed file. It runs none of\n"
            "# your code again and changes nothing. RELEASED describes the cells as they were handed out.\n"
            f"RELEASED = {manifest_text}\n\n{body}\n\n\ncheck_before_upload(RELEASED)\n")


def colab_url(repository: str, assignment: str, notebook: str) -> str | None:
    """The address that opens ``release/<assignment>/<notebook>.ipynb`` of the public GitHub repository on Colab."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?(?:/tree/([\w./-]+))?/?", repository or "")
    if not match:
        return None
    owner, repo, branch = match.group(1), match.group(2), match.group(3) or "main"
    return (f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/"
            f"release/{assignment}/{notebook}.ipynb")


def _read_only(cell, grade_id: str):
    cell.metadata.update({"deletable": False, "editable": False})
    cell.metadata["nbgrader"] = {"grade": False, "locked": True, "solution": False, "grade_id": grade_id,
                                 "schema_version": 3}
    cell.id = grade_id.replace("_", "-")
    return cell


def student_cells(nb, assignment: str, notebook: str, repository: str = "", released_nb=None) -> tuple:
    """``(badge cell or None, heading cell, check cell)`` for notebook ``nb`` (``released_nb``: the same as released,
    for the manifest; default ``nb``)."""
    stem = prefix(nb, notebook)
    url = colab_url(repository, assignment, notebook)
    badge = None
    if url:
        badge = _read_only(new_markdown_cell(f'<a href="{url}" target="_parent"><img src="{BADGE_IMAGE}" '
                                             f'alt="Open In Colab"/></a>'), stem + SUFFIXES["badge"])
    heading = _read_only(new_markdown_cell(
        "## Before you upload\n\n"
        "Run the cell below last, also when *Run all* stopped at an error above (click into it, then Shift+Enter). "
        "It checks your notebook without the hidden tests and lists what is still to do: answers not done, visible "
        "tests that fail, deleted cells, a renamed file. Then download the notebook (Colab: *File > Download > "
        f"Download .ipynb*) and upload `{notebook}.ipynb` to the learning platform."), stem + SUFFIXES["heading"])
    check = _read_only(new_code_cell(check_source(manifest(released_nb or nb, assignment, notebook))),
                       stem + SUFFIXES["check"])
    check.metadata["jupyter"] = {"source_hidden": True}  # JupyterLab: the code folded away; Colab: the form title
    check.metadata["cellView"] = "form"
    return badge, heading, check


def add_student_cells(nb, assignment: str, notebook: str, repository: str = "", released_nb=None):
    """``nb`` with the badge on top and the check at the end (once: cells added before are replaced)."""
    nb.cells = [c for c in nb.cells if not is_added(c)]
    badge, heading, check = student_cells(nb, assignment, notebook, repository,
                                          released_nb=released_nb)
    nb.cells = ([badge] if badge else []) + nb.cells + [heading, check]
    return nb


def released_manifest(nb) -> dict | None:
    """The manifest embedded in a notebook's check cell, or None."""
    for cell in nb.cells:
        if (_meta(cell).get("grade_id") or "").endswith(SUFFIXES["check"]):
            match = re.search(r"^RELEASED = (\{.*?\n\]\})$", cell.source, re.M | re.S)
            if match:
                return json.loads(match.group(1))
    return None


class AddStudentCells(NbGraderPreprocessor):
    """``generate_assignment``: the badge and the check before upload (module docstring).  It belongs after
    ``ClearSolutions``/``ClearOutput`` and before ``ComputeChecksums``/``SaveCells``; it takes the manifest from a
    copy of the notebook with the hidden tests and mark schemes cleared as the release will have them."""

    def preprocess(self, nb, resources):
        from .feedback import ClearHiddenTests, ClearMarkScheme  # nbgrader's, configured as in the release

        released = copy.deepcopy(nb)
        for step in (ClearHiddenTests, ClearMarkScheme):
            released, _ = step(parent=self).preprocess(released, copy.deepcopy(resources))
        info = resources["nbgrader"]
        repository = Layout.of(self).setting("public_repository", "") or ""
        add_student_cells(nb, info["assignment"], info["notebook"], repository, released_nb=released)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        return cell, resources


def check_file(root: str | Path, path: str | Path) -> tuple[str, int]:
    """``(checklist, number of things to do)`` for a notebook file, as its check cell would print them (the
    manifest from its check cell, or, when that is gone, from the released notebook its content matches)."""
    import nbformat

    from .course import assignments
    from .intake import ReleaseIndex

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    released = released_manifest(nb)
    if released is None:
        best = None
        for assignment in assignments(root):
            index = ReleaseIndex(Layout(root).release(assignment))
            for name, score in index.scores(nb).items():
                if best is None or score > best[0]:
                    best = (score, assignment, name)
        if best is None or best[0] < 0.5:
            raise ValueError(f"{path} matches no released notebook")
        released = released_manifest(nbformat.read(Layout(root).release(best[1], best[2]), as_version=4))
    items = upload_check.findings(nb, released, path.name)
    text = upload_check.report(items, released, f"checked: the file {path}",
                               f"upload it as {released['notebook']}.ipynb")
    return text, sum(1 for ok, _, _ in items if ok is False)

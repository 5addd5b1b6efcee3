"""The check before upload: the last cell of every released notebook runs this code (the release embeds it).

Everything below the marker line goes verbatim into the notebook's last cell, after a ``RELEASED = {...}``
manifest of the released cells (``coursekit/release.py`` writes it).  The cell has to work where the kit is not
installed (Colab, a student's own Jupyter), so this code uses the standard library only, runs on Python 3.8 or
newer, names nothing of the kit, runs none of the student's code again, changes nothing, writes nothing to stderr,
never raises, and under the autograder prints one line and stops.  It reads the notebook as the student would
upload it: on Colab the notebook in the browser (Colab's ``get_ipynb``), elsewhere the saved ``.ipynb`` file.
The kit's tests and ``python -m coursekit check-upload`` call :func:`findings` and :func:`report` directly.
"""

# ---- the cell's code starts here ----
import hashlib
import json
import os
import re
import sys
import time

STUB = "raise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
STUB_LINE = re.compile(r"^[ \t]*raise NotImplementedError\(\)[ \t]*(#.*)?$", re.M)


def fingerprint(text):
    """A short checksum of a cell's text that ignores changes of white space."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]


def _source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _grade_id(cell):
    return ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")


def _names(text):
    """The functions and classes a cell defines."""
    return re.findall(r"^(?:def|class)\s+(\w+)", text, re.M)


def _lines(text):
    return {" ".join(line.split()) for line in text.splitlines() if line.strip()}


def _errors(cell):
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _error_text(output):
    value = " ".join(str(output.get("evalue", "")).split())
    return str(output.get("ename", "Error")) + (": " + (value[:117] + "..." if len(value) > 120 else value) if value
                                                else "")


# ---------------------------------------------------------------------------------------- finding the notebook
def _colab_notebook(timeout=10.0):
    """``(notebook, file name)`` as Colab has them in the browser, or None when this is not Colab."""
    if "google.colab" not in sys.modules:
        return None
    import threading

    from google.colab import _message  # Colab's own module: it asks the browser

    reply = {}

    def ask():
        try:
            reply["ipynb"] = _message.blocking_request("get_ipynb", timeout_sec=timeout)["ipynb"]
        except Exception as error:  # reported below as "did not hand over the notebook"
            reply["error"] = error

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout + 2)
    notebook = reply.get("ipynb")
    name = None
    try:  # Colab's Jupyter server knows the name shown at the top left, which the download gets
        import urllib.parse
        import urllib.request

        address = "http://%s:%s/api/sessions" % (os.environ["COLAB_JUPYTER_IP"],
                                                  os.environ.get("KMP_TARGET_PORT", "9000"))
        with urllib.request.urlopen(address, timeout=3) as response:
            name = urllib.parse.unquote(json.loads(response.read().decode())[0]["name"])
    except Exception:  # then the name in the notebook's metadata, if any
        name = ((notebook or {}).get("metadata", {}).get("colab") or {}).get("name")
    return notebook, name


def _local_file(released, user_ns):
    """The saved notebook file of this kernel: VS Code's, Jupyter's session, else the newest copy in the folder."""
    candidates = [user_ns.get("__vsc_ipynb_file__"), os.environ.get("JPY_SESSION_NAME"), user_ns.get("__session__")]
    for path in candidates:
        if path and str(path).endswith(".ipynb") and os.path.isfile(str(path)):
            return str(path)
    found = []
    for name in os.listdir("."):
        if name.endswith(".ipynb") and os.path.isfile(name):
            try:
                with open(name, encoding="utf-8") as f:
                    if released["check_id"] in f.read():
                        found.append(name)
            except (OSError, UnicodeDecodeError):
                continue
    return max(found, key=os.path.getmtime) if found else None


# ---------------------------------------------------------------------------------------------- the findings
def _saved_state(nb, executed, check_id):
    """How the saved file ``nb`` compares with the code run in this kernel since the last "Run all" (or restart):
    "changed" when the latest run of a cell differs from its saved text, "outputs" when cells ran but the file
    holds no outputs of theirs, else "saved"."""
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    runs = [text for text in executed if text.strip() and check_id not in text]
    if not code or not runs:
        return "saved"
    first = fingerprint(_source(code[0]))
    starts = [i for i, text in enumerate(runs) if fingerprint(text) == first]
    runs = runs[starts[-1]:] if starts else runs
    saved = [_lines(_source(c)) for c in code]
    latest = {}
    for text in runs:  # each run belongs to the saved cell it resembles most; the last run of a cell counts
        lines = _lines(text)
        scores = [len(lines & s) / max(len(lines | s), 1) for s in saved]
        best = max(range(len(saved)), key=scores.__getitem__)
        if scores[best] > 0.3:
            latest[best] = text
    if any(fingerprint(text) != fingerprint(_source(code[i])) for i, text in latest.items()):
        return "changed"
    if any(code[i].get("execution_count") is None for i in latest):
        return "outputs"
    return "saved"


def _label(kind, task, names):
    what = {"code": "answer", "text": "text answer", "visible": "visible test", "tests": "test cell"}.get(kind,
                                                                                                    "given cell")
    defines = (" (" + ", ".join("`%s`" % n for n in names) + ")") if names else ""
    return ((task + " ") if task else "") + what + defines


def findings(nb, released, name=None):
    """``[(ok, topic, [detail, ...]), ...]`` for notebook ``nb`` (a dict, as in the .ipynb file); ``ok`` is
    True, False (something to do) or None (could not tell).  ``name``: the notebook's file name, if known.

    ``released["cells"]`` lists the released cells as ``[grade_id, kind, task, fingerprint, names]``, ``kind``
    one of given, visible (a visible test), tests (graded by hidden tests), code or text (answers)."""
    wanted = released["notebook"] + ".ipynb"
    cells = [c for c in nb.get("cells", []) if _grade_id(c) not in released["added"]]
    entries = {entry[0]: entry for entry in released["cells"]}
    places = {}
    for index, cell in enumerate(cells):
        if _grade_id(cell) in entries:
            places.setdefault(_grade_id(cell), []).append(index)
    unmarked = [i for i, c in enumerate(cells) if _grade_id(c) not in entries]
    result = []

    # the file name
    if not name:
        result.append((None, "file name", ["could not tell the file's name: upload it as " + wanted]))
    elif os.path.basename(name) == wanted:
        result.append((True, "file name", [wanted + ", as released"]))
    else:
        result.append((False, "file name", ["the file is called '%s': rename it to %s before you upload it"
                                            % (os.path.basename(name), wanted)]))

    # cells deleted, copied, changed, or without their grading information (found by text, or for answers by
    # their place between the cells found)
    gone, lost, copied, changed = [], [], [], []
    at, free, restored = {}, list(unmarked), set()
    for grade_id, kind, task, digest, names in released["cells"]:
        if places.get(grade_id):
            at[grade_id] = places[grade_id][0]
        else:
            twin = next((i for i in free if fingerprint(_source(cells[i])) == digest[1:]), None)
            if twin is not None:
                at[grade_id] = twin
                free.remove(twin)
                restored.add(grade_id)
    order = [entry[0] for entry in released["cells"]]
    for position, (grade_id, kind, task, digest, names) in enumerate(released["cells"]):
        if grade_id in at or kind not in ("code", "text"):
            continue
        low = max([at[g] for g in order[:position] if g in at] or [-1])
        high = min([at[g] for g in order[position + 1:] if g in at] or [len(cells)])
        cell_type = "code" if digest[0] == "c" else "markdown"
        window = [i for i in free if low < i < high and cells[i].get("cell_type") == cell_type]
        named = [i for i in window if names and _names(_source(cells[i]))[:1] == names[:1]]
        if named or window:
            at[grade_id] = (named or window)[0]
            free.remove(at[grade_id])
            restored.add(grade_id)
    for grade_id, kind, task, digest, names in released["cells"]:
        label = _label(kind, task, names) + " `%s`" % grade_id
        if len(places.get(grade_id, [])) > 1:
            copied.append("%s is in the notebook %d times: keep only the original" % (label, len(places[grade_id])))
        if grade_id not in at:
            gone.append(label)
        elif grade_id in restored:
            lost.append(label)
        elif kind in ("given", "visible", "tests") and fingerprint(_source(cells[at[grade_id]])) != digest[1:]:
            changed.append(label)
    details = []
    if gone:
        details.append("deleted: " + "; ".join(gone) + ". Put each back: copy it from the released notebook")
    if lost:
        details.append("without their grading information (copied and pasted?): " + "; ".join(lost)
                       + ". The grader finds them by their content and place: leave them where they are")
    details += copied
    if changed:
        details.append("given cells changed (the grader runs them as released): " + "; ".join(changed))
    result.append((not details, "cells", details or ["every released cell is there, with its grading information"]))

    # answers: stubs left, text answers left empty
    open_answers, answers = [], 0
    for grade_id, kind, task, digest, names in released["cells"]:
        if kind not in ("code", "text") or grade_id not in at:
            continue
        answers += 1
        text = _source(cells[at[grade_id]])
        label = _label(kind, task, names)
        if kind == "code" and STUB_LINE.search(text):
            open_answers.append(label + ": not done yet (still `%s`)" % STUB)
        elif kind == "code" and fingerprint(text) == digest[1:]:
            open_answers.append(label + ": not answered (unchanged since the release)")
        elif kind == "text" and (TEXT_STUB in text or not text.strip()):
            open_answers.append(label + ": still empty (" + TEXT_STUB + ")")
    result.append((not open_answers, "answers", open_answers or ["all %d answers filled in" % answers]))

    # errors and visible tests, as the notebook's outputs show them
    problems, not_run, visible = [], 0, 0
    found_at = {index: entries[grade_id] for grade_id, index in at.items()}
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        grade_id, kind, task, digest, names = found_at.get(index, (None, "own", "", "", []))
        visible += kind == "visible"
        if cell.get("execution_count") is None and not cell.get("outputs") and kind != "own":
            not_run += 1
        for output in _errors(cell)[:1]:
            error = _error_text(output)
            if kind == "visible":
                problems.append(_label(kind, task, []) + " fails: " + error)
            elif kind == "own":
                problems.append("a cell you added raised " + error)
            else:
                problems.append(_label(kind, task, names) + " raised " + error
                                + (" (an answer it uses is not done yet)" if kind == "given"
                                   and output.get("ename") == "NotImplementedError" else ""))
    if not_run:
        problems.append("%d cells have not run%s: run all cells (Colab: Runtime > Run all; Jupyter: Run > Run All "
                        "Cells), then this cell again" % (not_run, " (Run all stops at the first error)" if problems
                                                          else ""))
    result.append((not problems, "runs", problems or [
        "every cell ran without an error and the %d visible tests pass (they catch obvious mistakes only: "
        "hidden tests grade)" % visible]))
    return result


# ------------------------------------------------------------------------------------------------ the report
def report(items, released, where, how):
    """The checklist as text: ``where`` says what was read, ``how`` how to download the file."""
    to_do = sum(1 for ok, _, _ in items if ok is False)
    unknown = sum(1 for ok, _, _ in items if ok is None)
    if to_do:
        verdict = "%d thing%s to do" % (to_do, "s" if to_do > 1 else "")
    else:
        verdict = "all clear" if not unknown else "nothing to do found, %d thing%s not checked" % (
            unknown, "s" if unknown > 1 else "")
    lines = ["Check before you upload %s.ipynb: %s" % (released["notebook"], verdict), "(" + where + ")"]
    for ok, topic, details in items:
        mark = {True: "[ok]", False: "[!!]", None: "[??]"}[ok]
        if len(details) == 1:
            lines.append("%s %s: %s" % (mark, topic, details[0]))
        else:
            lines += ["%s %s:" % (mark, topic)] + ["     - " + d for d in details]
    lines.append("To upload: " + how)
    return "\n".join(lines)


def check_before_upload(released, user_ns=None):
    """The cell's work: find the notebook, check it, print the checklist; in grading mode only one line."""
    if "NBGRADER_EXECUTION" in os.environ:
        print("The autograder runs this notebook: the check before upload is skipped.")
        return
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(_check(released, user_ns))
    except Exception as error:  # the check must never stop the notebook or write to stderr
        print("The check could not run (%s: %s). Before you upload, make sure that every answer is filled in, "
              "that all cells run, and that the file is called %s.ipynb." % (type(error).__name__, error,
                                                                             released["notebook"]))


def _check(released, user_ns):
    if user_ns is None:
        try:
            from IPython import get_ipython

            user_ns = get_ipython().user_ns
        except (ImportError, AttributeError):  # not in IPython
            user_ns = {}
    wanted = released["notebook"] + ".ipynb"
    colab = _colab_notebook()
    if colab is not None:
        nb, name = colab
        if nb is None:
            return ("Colab did not hand over the notebook: save it (File > Save) and run this cell again. Upload it "
                    "as %s (File > Download > Download .ipynb)." % wanted)
        return report(findings(nb, released, name), released, "checked: the notebook as it is open in Colab",
                      "File > Download > Download .ipynb, then upload " + wanted + " to the learning platform")
    path = _local_file(released, user_ns)
    if path is None:
        return ("Could not find this notebook's file in %s: save it (Ctrl+S) and run this cell again. Upload it as %s"
                % (os.getcwd(), wanted))
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    saved_at = time.strftime("%H:%M:%S", time.localtime(os.path.getmtime(path)))
    where = "checked: the file %s as saved at %s" % (path, saved_at)
    shell = user_ns.get("get_ipython", lambda: None)()
    executed = list(getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or user_ns.get("In", []))
    state = _saved_state(nb, executed, released["check_id"])
    items = findings(nb, released, path)
    if state != "saved":  # what ran here is newer than the file: its outputs say nothing about this run
        items = [item for item in items if item[1] != "runs"] + [
            (None, "runs", ["the saved file has no outputs of what you ran: save (Ctrl+S), then run this cell again "
                            "to see errors and visible tests"])]
    if state == "changed":
        items.insert(0, (False, "saved", ["you ran code that is not in the saved file, which is what you upload: "
                                          "save (Ctrl+S), then run this cell again"]))
    vscode = "__vsc_ipynb_file__" in user_ns
    how = ("upload the file %s itself" % os.path.abspath(path) if vscode else
           "File > Download (or take the file %s from your disk), then upload %s to the learning platform"
           % (os.path.abspath(path), wanted))
    return report(items, released, where, how)

"""The student's side of the release: the Open-in-Colab badge, the version warning of the setup cells, and the
check before upload (coursekit/release.py, coursekit/kernel/upload_check.py) on the notebook a student would
upload: the solution, the untouched release, a notebook with a deleted cell under another name, Colab's copy."""

from __future__ import annotations

import ast
import contextlib
import copy
import html.parser
import http.server
import io
import json
import re
import sys
import threading
import types
from importlib import metadata

import nbformat
import pytest

from coursekit import course, env, oldest, release, submissions
from coursekit.kernel import upload_check

ROOT = course.ROOT


def notebooks():
    return [(a, nb) for a in course.assignments(ROOT) for nb in course.released_notebooks(ROOT, a)]


def released(assignment, name):
    return nbformat.read(ROOT / "release" / assignment / f"{name}.ipynb", as_version=4)


def check_cell(nb):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("_check_before_upload"))


def items(nb, manifest, name):
    """``{topic: (ok, details)}`` of the check's findings."""
    return {topic: (ok, details) for ok, topic, details in upload_check.findings(nb, manifest, name)}


# -- the cells the release adds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment,name", notebooks())
def test_every_release_ends_with_the_check_whose_code_and_manifest_are_current(assignment, name):
    nb = released(assignment, name)
    heading, check = nb.cells[-2:]
    assert check is check_cell(nb) and heading.source.startswith("## Before you upload")
    for cell in (heading, check):
        assert cell.metadata.nbgrader["locked"] and not cell.metadata.nbgrader["grade"]
        assert cell.metadata["deletable"] is False and cell.metadata["editable"] is False
    assert check.metadata["jupyter"]["source_hidden"] and check.metadata["cellView"] == "form"
    manifest = release.released_manifest(nb)
    assert manifest == release.manifest(nb, assignment, name), "the manifest does not describe the released cells"
    assert check.source == release.check_source(manifest), (
        "the check cell is not coursekit/kernel/upload_check.py as it is now: run `nbgrader generate_assignment`")
    ids = [e[0] for e in manifest["cells"]]
    assert ids == [c.metadata.nbgrader.grade_id for c in nb.cells[1:-2]]  # every released cell but the added ones
    ast.parse(check.source, feature_version=(3, 8))  # runs on the Pythons students have, 3.8 and newer


@pytest.mark.parametrize("assignment,name", notebooks())
def test_the_check_holds_nothing_of_the_hidden_tests(assignment, name):
    source = nbformat.read(ROOT / "source" / assignment / f"{name}.ipynb", as_version=4)
    check = check_cell(released(assignment, name)).source
    hidden = [c.source.split("### BEGIN HIDDEN TESTS", 1)[1] for c in source.cells if "### BEGIN HIDDEN TESTS" in c.source]
    assert hidden
    lines = {line.strip() for text in hidden for line in text.splitlines() if len(line.strip()) > 25}
    assert not [line for line in lines if line in check]
    whole = {upload_check.fingerprint(c.source) for c in source.cells if "### BEGIN HIDDEN TESTS" in c.source}
    assert not [e for e in release.released_manifest(released(assignment, name))["cells"] if e[3][1:] in whole]


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs))


@pytest.mark.parametrize("assignment,name", notebooks())
def test_the_colab_badge_opens_the_released_file_of_the_public_repository(assignment, name):
    repository = course.setting(ROOT, "public_repository")
    owner_repo = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", repository).group(1)
    parser = Links()
    parser.feed(released(assignment, name).cells[0].source)
    (link,) = parser.links
    match = re.fullmatch(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/(.+\.ipynb)",
                         link["href"])
    assert match and match.group(1) == owner_repo and match.group(2) == "main"
    assert (ROOT / match.group(3)).is_file() and match.group(3) == f"release/{assignment}/{name}.ipynb"
    assert link.get("target") == "_parent"


def test_colab_addresses_from_the_repository_setting():
    assert release.colab_url("https://github.com/a-b/c.d", "exam", "1_x") == \
        "https://colab.research.google.com/github/a-b/c.d/blob/main/release/exam/1_x.ipynb"
    assert release.colab_url("https://github.com/a/b.git", "lab", "2_y").endswith("/github/a/b/blob/main/release/lab/2_y.ipynb")
    assert "/blob/spring-2025/" in release.colab_url("https://github.com/a/b/tree/spring-2025", "lab", "2_y")
    for wrong in ("", "github.com/a/b", "https://gitlab.com/a/b", "https://github.com/a"):
        assert release.colab_url(wrong, "lab", "2_y") is None
    nb = released("lab", "1_autodiff")
    plain = release.add_student_cells(copy.deepcopy(nb), "lab", "1_autodiff", repository="")
    assert not any("colab.research.google.com" in c.source for c in plain.cells)  # no setting, no badge
    assert len(plain.cells) == len(nb.cells) - 1


# -- the version warning -----------------------------------------------------------------------------------------
def major_minor(version):
    return ".".join(version.split(".")[:2])


def test_the_supported_range_is_the_tested_one_and_every_setup_cell_warns_outside_it():
    oldest_pins, pinned = oldest.pins(), env.pip_pins()
    for package, (low, high) in release.SUPPORTED.items():
        assert low == major_minor(oldest_pins[package]) and high == major_minor(pinned[package])
    for assignment, name in notebooks():
        nb = nbformat.read(ROOT / "source" / assignment / f"{name}.ipynb", as_version=4)
        setup = next(c for c in nb.cells if c.cell_type == "code")
        assert setup.source.split("\n", 1)[1].startswith(release.VERSION_CHECK), (
            f"{name}: its setup cell does not start with the version check (right after its first comment line, "
            "before the imports that an old version could break)")
    readme = (ROOT / "README.md").read_text()
    assert "torch 2.5 to 2.14" in readme and "torchvision 0.20 to 0.29" in readme


@pytest.mark.parametrize("installed,says", [
    ({"torch": "2.2.2+cu121", "torchvision": "0.17.2"}, ["WARNING: torch 2.2.2+cu121 is older than 2.5",
                                                         "WARNING: torchvision 0.17.2 is older than 0.20"]),
    ({"torch": "2.5.1+cu124", "torchvision": "0.20.1"}, []),
    ({"torch": "2.14.1", "torchvision": "0.29.1"}, []),
    ({"torch": "2.15.0.dev20260101", "torchvision": "0.30.0"}, ["Note: torch 2.15.0.dev20260101 is newer than 2.14",
                                                                "Note: torchvision 0.30.0 is newer than 0.29"]),
    ({}, []),  # not installed (the quiz does not need torch)
])
def test_the_version_check_prints_a_warning_only_outside_the_range(monkeypatch, installed, says):
    def version(package):
        if package not in installed:
            raise metadata.PackageNotFoundError(package)
        return installed[package]

    monkeypatch.setattr(metadata, "version", version)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(release.VERSION_CHECK, {})
    printed = out.getvalue().strip().splitlines()
    assert len(printed) == len(says) and all(p.startswith(s) for p, s in zip(printed, says)), printed


# -- the check, on notebooks as students leave them -------------------------------------------------------------
@pytest.mark.parametrize("assignment,name", notebooks())
def test_the_solution_is_all_clear_and_the_untouched_release_lists_every_open_task(assignment, name):
    """Without running anything: the answers, the cells and the name (runs are checked in a kernel below)."""
    nb = released(assignment, name)
    manifest = release.released_manifest(nb)
    solution = items(submissions.build(ROOT, assignment, name), manifest, f"/home/me/{name}.ipynb")
    assert {t: ok for t, (ok, _) in solution.items() if t != "runs"} == {"file name": True, "cells": True,
                                                                          "answers": True}
    untouched = items(nb, manifest, f"{name}.ipynb")
    ok, details = untouched["answers"]
    answers = [e for e in manifest["cells"] if e[1] in ("code", "text")]
    assert ok is False and len(details) == len(answers)
    for (grade_id, kind, task, _, _), line in zip(answers, details):
        assert line.startswith(task + " ") and ("not done yet" in line if kind == "code" else "still empty" in line)
    assert untouched["runs"][0] is False  # never run: the check says so


@pytest.mark.parametrize("assignment,name", notebooks())
def test_colab_saved_copies_are_found_by_content_and_place(assignment, name):
    """Colab may drop nbgrader's metadata of every cell: the check finds each answer anyway and says so."""
    manifest = release.released_manifest(released(assignment, name))
    found = items(submissions.as_saved_by_colab(submissions.build(ROOT, assignment, name)), manifest,
                  f"{name}.ipynb")
    ok, details = found["cells"]
    assert ok is False and details[0].startswith("without their grading information") and "deleted" not in details[0]
    assert found["answers"][0] is True  # every answer recognised, none taken for the stub


def test_deleted_copied_changed_and_failing_cells_are_named():
    nb = submissions.build(ROOT, "exam", "1_gradcam", model_text=False)
    manifest = release.released_manifest(nb)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    del nb.cells[ids.index("gradcam_d_visible_tests")]
    nb.cells.insert(3, copy.deepcopy(nb.cells[ids.index("gradcam_setup")]))  # a copy of the setup cell
    photo = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "gradcam_photo")
    photo.source += "\nprint('mine')"
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "gradcam_e_visible_tests")
    test.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="the map's values should lie in [0, 1]",
                                           traceback=[])]
    found = items(nb, manifest, "exam.ipynb")
    assert found["file name"] == (False, ["the file is called 'exam.ipynb': rename it to 1_gradcam.ipynb before you "
                                          "upload it"])
    cells = " ".join(found["cells"][1])
    assert "deleted: 1(d) visible test `gradcam_d_visible_tests`" in cells
    assert "given cell `gradcam_setup` is in the notebook 2 times" in cells
    assert "given cells changed (the grader runs them as released): given cell `gradcam_photo`" in cells
    answers = found["answers"][1]
    assert [line.split(":")[0] for line in answers] == ["1(a) text answer", "1(b) text answer"]
    assert "1(e) visible test fails: AssertionError: the map's values should lie in [0, 1]" in found["runs"][1]


def test_the_saved_file_is_compared_with_what_ran():
    nb = json.loads(nbformat.writes(submissions.build(ROOT, "lab", "1_autodiff")))
    code = [upload_check._source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    check = release.released_manifest(nbformat.reads(json.dumps(nb), as_version=4))["check_id"]
    for cell in nb["cells"]:
        cell["execution_count"] = 1 if cell["cell_type"] == "code" else None
    assert upload_check._saved_state(nb, code, check) == "saved"
    assert code[6].startswith("# The forward trace")  # an answer cell
    edited = code[:6] + [code[6] + "\nforward_trace['y'] = 0.0"] + code[7:]
    assert upload_check._saved_state(nb, edited, check) == "changed"  # an answer changed after the last save
    assert upload_check._saved_state(nb, edited + code[6:7], check) == "saved"  # ran again as saved
    assert upload_check._saved_state(nb, ["old"] + edited + code, check) == "saved"  # the last "Run all" counts
    for cell in nb["cells"]:
        cell["execution_count"] = None
    assert upload_check._saved_state(nb, code, check) == "outputs"


# -- the check cell in a kernel -----------------------------------------------------------------------------------
def lines(text):
    return [line for line in text.splitlines() if line.startswith("[")]


def test_the_solution_run_as_a_student_is_all_clear(tmp_path):
    saved, printed = oldest.run_as_student(sys.executable, "exam", "4_true_false_quiz", tmp_path)
    assert printed.startswith("Check before you upload 4_true_false_quiz.ipynb: all clear"), printed
    assert lines(printed) == [
        "[ok] file name: 4_true_false_quiz.ipynb, as released",
        "[ok] cells: every released cell is there, with its grading information",
        "[ok] answers: all 4 answers filled in",
        "[ok] runs: every cell ran without an error and the 4 visible tests pass (they catch obvious mistakes only: "
        "hidden tests grade)"], printed
    assert f"checked: the file {tmp_path / '4_true_false_quiz.ipynb'} as saved" in printed
    assert not [o for c in saved.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]


def test_the_untouched_release_run_as_a_student_lists_every_task(tmp_path):
    nb = released("lab", "1_autodiff")
    _, printed = oldest.run_as_student(sys.executable, "lab", "1_autodiff", tmp_path, nb=nb)
    assert printed.startswith("Check before you upload 1_autodiff.ipynb: 2 things to do"), printed
    for task, grade_id in [("1(a)", "autodiff_a_graph"), ("1(b)", "autodiff_b_forward"),
                           ("1(c)", "autodiff_c_backward"), ("1(d)", "autodiff_d_value")]:
        assert f"{task} answer" in printed and "not done yet" in printed
    assert "1(a) answer raised NotImplementedError" in printed
    assert "1(d) visible test fails" in printed


def test_a_renamed_copy_with_a_deleted_cell_is_caught(tmp_path):
    nb = submissions.build(ROOT, "exam", "4_true_false_quiz")
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "quiz_b_format"]
    _, printed = oldest.run_as_student(sys.executable, "exam", "4_true_false_quiz", tmp_path,
                                       name="Copy of 4_true_false_quiz.ipynb", nb=nb)
    assert "[!!] file name: the file is called 'Copy of 4_true_false_quiz.ipynb': rename it to " \
           "4_true_false_quiz.ipynb before you upload it" in printed
    assert "[!!] cells: deleted: 4(b) visible test `quiz_b_format`. Put each back" in printed
    assert "[ok] answers: all 4 answers filled in" in printed


def test_under_the_autograder_it_prints_one_line_and_nothing_on_stderr(monkeypatch, capfd):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    exec(check_cell(released("exam", "1_gradcam")).source, {})
    out, err = capfd.readouterr()
    assert out == "The autograder runs this notebook: the check before upload is skipped.\n" and err == ""


def test_it_never_raises_nor_writes_to_stderr(monkeypatch, capfd, tmp_path):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "1_gradcam.ipynb").write_text('{"cells": "not a list", "check": "gradcam_check_before_upload"}')
    exec(check_cell(released("exam", "1_gradcam")).source, {})
    out, err = capfd.readouterr()
    assert out.startswith("The check could not run (AttributeError") and "called 1_gradcam.ipynb" in out and err == ""
    (tmp_path / "1_gradcam.ipynb").unlink()
    exec(check_cell(released("exam", "1_gradcam")).source, {})
    out, err = capfd.readouterr()
    assert out.startswith("Could not find this notebook's file in") and err == ""


# -- on Colab ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def fake_colab(notebook, name, monkeypatch):
    """google.colab._message as Colab's kernel has it, and Colab's Jupyter server answering /api/sessions."""
    message = types.ModuleType("google.colab._message")
    message.blocking_request = lambda kind, timeout_sec=None: {"ipynb": notebook} if kind == "get_ipynb" else None
    colab = types.ModuleType("google.colab")
    colab._message = message
    google = types.ModuleType("google")
    google.colab = colab
    for module_name, module in (("google", google), ("google.colab", colab), ("google.colab._message", message)):
        monkeypatch.setitem(sys.modules, module_name, module)

    class Sessions(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps([{"name": name, "path": "fileId=abc"}]).encode() if self.path == "/api/sessions" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Sessions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("COLAB_JUPYTER_IP", "127.0.0.1")
    monkeypatch.setenv("KMP_TARGET_PORT", str(server.server_port))
    try:
        yield
    finally:
        server.shutdown()


def test_on_colab_it_checks_the_open_notebook_and_the_name_colab_gives_it(monkeypatch, capfd, tmp_path):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.chdir(tmp_path)  # no file here: Colab's notebook lives in the browser
    nb = json.loads(nbformat.writes(submissions.as_saved_by_colab(released("lab", "1_autodiff"))))
    with fake_colab(nb, "Copy of 1_autodiff.ipynb", monkeypatch):
        exec(check_cell(released("lab", "1_autodiff")).source, {})
    out, err = capfd.readouterr()
    assert err == "" and "(checked: the notebook as it is open in Colab)" in out
    assert "the file is called 'Copy of 1_autodiff.ipynb': rename it to 1_autodiff.ipynb" in out
    assert "without their grading information" in out and "1(d) answer (`Value`): not done yet" in out
    assert "To upload: File > Download > Download .ipynb, then upload 1_autodiff.ipynb" in out


def test_on_colab_a_notebook_colab_does_not_hand_over_is_said_plainly(monkeypatch, capfd):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with fake_colab(None, "1_autodiff.ipynb", monkeypatch):
        sys.modules["google.colab._message"].blocking_request = lambda *a, **k: (_ for _ in ()).throw(TimeoutError())
        exec(check_cell(released("lab", "1_autodiff")).source, {})
    out, err = capfd.readouterr()
    assert out.startswith("Colab did not hand over the notebook") and err == ""


# -- the command -------------------------------------------------------------------------------------------------
def test_check_upload_checks_a_file_even_without_its_check_cell(tmp_path, capsys):
    from coursekit.__main__ import main

    nb = submissions.build(ROOT, "lab", "1_autodiff")
    nb.cells = [c for c in nb.cells if not release.is_added(c)]
    nbformat.write(nb, tmp_path / "lab1.ipynb")
    assert main(["check-upload", str(tmp_path / "lab1.ipynb")]) == 1
    out = capsys.readouterr().out
    assert "rename it to 1_autodiff.ipynb" in out and "[ok] answers: all 4 answers filled in" in out
    nbformat.write(submissions.build(ROOT, "lab", "1_autodiff"), tmp_path / "1_autodiff.ipynb")
    assert main(["check-upload", str(tmp_path / "1_autodiff.ipynb")]) == 1  # never run: "runs" is to do


def test_the_feedback_shows_what_the_check_is_for_not_its_code():
    from coursekit.feedback import TaskSummary

    nb, _ = TaskSummary().preprocess(released("lab", "1_autodiff"), {})
    source = check_cell(nb).source
    assert source.startswith("#@title Check before you upload") and "def findings" not in source, source
    assert source.endswith("# (its code is not shown in the feedback)") and len(source.splitlines()) == 5

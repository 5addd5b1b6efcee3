"""The bundled example submissions, the main job that grades them, and parallel, resumable grading."""

from __future__ import annotations

import csv
import re
import shutil
import time

import nbformat
import pytest

from coursekit import autograde, course, examples, pipeline

from . import browser
from .conftest import course_with_examples

ROOT = course.ROOT


def test_example_submissions_are_up_to_date():
    built = examples.notebooks(ROOT)
    on_disk = {p.relative_to(ROOT / "examples" / "submissions")
               for p in (ROOT / "examples" / "submissions").rglob("*.ipynb")}
    assert on_disk == set(built), "run `python -m coursekit examples`"
    for path, nb in built.items():
        committed = nbformat.read(ROOT / "examples" / "submissions" / path, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in nb.cells], (
            f"examples/submissions/{path} is stale: run `python -m coursekit examples`")


def expected_auto_scores(root):
    """Each example student's automatic points, derived from the mistakes they made."""
    points, full, expected = {}, {}, {}
    for assignment in course.assignments(root):
        for nb in course.released_notebooks(root, assignment):
            source = nbformat.read(root / "source" / assignment / f"{nb}.ipynb", as_version=4)
            cells = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
            points.update({c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points for c in cells})
            full[(assignment, nb)] = sum(c.metadata.nbgrader.points for c in cells if c.cell_type == "code")
    for student in examples.students(root):
        for assignment, entries in student.get("assignments", {}).items():
            known = examples.mistakes(root, assignment)
            total = 0.0
            for nb, spec in entries.items():
                if spec.get("untouched"):
                    continue
                total += full[(assignment, nb)]
                for name in spec.get("mistakes", []):
                    total -= sum(points[cell] - score for cell, score in known[name].expect.items())
            expected[(student["id"], assignment)] = total
    return expected


def test_main_job_grades_every_example_student(main_job):
    root, table, out = main_job
    for command in ("nbgrader generate_assignment", "nbgrader autograde", "nbgrader generate_feedback",
                    "nbgrader export"):
        assert command in out
    for (student, assignment), auto in expected_auto_scores(root).items():
        rows = course.cell_scores(root, assignment)[student]
        got = sum(r.score for r in rows if r.auto)
        assert got == auto, f"{student}/{assignment}: {got} automatic points, expected {auto}"
        assert student in table
        for path in (root / "submitted" / student / assignment).glob("*.ipynb"):
            assert (root / "feedback" / student / assignment / f"{path.stem}.html").exists()
    with open(root / "grades.csv") as f:
        exported = {(row["student_id"], row["assignment"]) for row in csv.DictReader(f)}
    assert set(expected_auto_scores(root)) <= exported
    assert (root / "reports" / "exam" / "grading-report.md").exists()
    assert not list((root / "feedback").rglob(".coursekit-graded"))  # the kit's marker stays out of the feedback
    assert "canary: the solution earned every automatic point and the untouched release none" in out
    assert "not recognized by" not in out  # generate_feedback without nbconvert's config warnings


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- results of the main job (these read the graded course before the tests below change it) --------
def test_export_has_a_column_per_task_and_lms_files(main_job):
    root = main_job[0]
    expected = expected_auto_scores(root)
    for assignment in ("exam", "lab"):
        rows = {r["student_id"]: r for r in read_csv(root / "grades" / f"{assignment}-tasks.csv")}
        tasks = [c for c in next(iter(rows.values())) if re.fullmatch(r"\d\([a-z]\)", c)]
        assert ("3(d)" in tasks) if assignment == "exam" else ("3(c)" in tasks)
        for (student, a), auto in expected.items():
            if a != assignment:
                continue
            row = rows[student]
            assert float(row["auto"]) == auto
            graded = [float(row[t]) for t in tasks if row[t] != ""]
            assert sum(graded) == pytest.approx(float(row["total"]))
        moodle = {r["ID number"]: r[assignment] for r in read_csv(root / "grades" / f"{assignment}-moodle.csv")}
        canvas_rows = read_csv(root / "grades" / f"{assignment}-canvas.csv")
        assert canvas_rows[0]["Student"] == "    Points Possible"  # Canvas's row of the maximum points
        assert canvas_rows[0][assignment] == ("96" if assignment == "exam" else "30")
        canvas = {r["SIS User ID"]: r[assignment] for r in canvas_rows[1:]}
        for student, row in rows.items():
            # a platform gets a grade only once every text answer is graded
            want = row["total"] if row["manual_open"] == "0" else ""
            assert moodle[student] == canvas[student] == want
        if assignment == "exam":
            assert rows["example_ada"]["manual_open"] != "0" and moodle["example_ada"] == ""


def test_canvas_file_fills_the_configured_assignment(main_job, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(main_job[0], root, symlinks=True)
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text().replace("c.CourseKit.canvas_assignment_ids = {}",
                                                 'c.CourseKit.canvas_assignment_ids = {"exam": 4242}'))
    course.nbgrader(root, "export", "--to=grades.csv")
    rows = read_csv(root / "grades" / "exam-canvas.csv")
    assert list(rows[0]) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "exam (4242)"]
    assert rows[0]["Student"] == "    Points Possible" and rows[0]["exam (4242)"] == "96"


def test_the_hand_graded_exam_gets_what_the_human_gave(main_job):
    """example_greta reproduces the mistakes of a real exam graded by hand (a crash from an undefined name, a network
    of another interface used consistently, several slips in one task): per task within 0.5 of the human's points."""
    root, _, out = main_job
    human = {r["student_id"]: r for r in read_csv(root / "examples" / "human-grades" / "exam.csv")}["example_greta"]
    kit = {}
    for r in course.cell_scores(root, "exam")["example_greta"]:
        if r.auto:
            kit[r.task] = kit.get(r.task, 0) + r.score
    far = {task: (kit[task], float(points)) for task, points in human.items()
           if task != "student_id" and abs(kit[task] - float(points)) > 0.5}
    assert not far, f"more than half a point from the human: {far}"
    assert sum(kit.values()) == sum(float(v) for k, v in human.items() if k != "student_id") == 47
    assert "Calibration of 'exam': 7 students graded by hand" in out
    page = (root / "reports" / "exam" / "calibration.html").read_text()
    assert "Lin's concordance" in page and "<img" in page and "example_greta" in page


def test_lab_bonus_comes_on_top_of_the_maximum(main_job):
    root = main_job[0]
    rows = {r["student_id"]: r for r in read_csv(root / "grades" / "lab-tasks.csv")}
    assert {r["max"] for r in rows.values()} == {"30"}  # 10 + 10 + 10; the bonus 3(e) is on top
    assert rows["example_ada"]["bonus"] == "3" and rows["example_chloe"]["bonus"] == "2"
    chloe = rows["example_chloe"]
    assert float(chloe["total"]) == sum(float(chloe[t]) for t in chloe if re.fullmatch(r"\d\([a-z]\)", t))
    page = (root / "feedback" / "example_ada" / "lab" / "3_vgg16_cifar10.html").read_text()
    assert "Your score: 13 / 10 points (bonus included; up to 3 bonus points on top of the 10)" in page
    assert "3 / 3 bonus" in page
    assert "(+3 bonus)" in course.score_table(root, "lab")


def test_feedback_starts_with_a_summary_by_task(main_job):
    root = main_job[0]
    page = (root / "feedback" / "example_ben" / "exam" / "3_svhn_cnn.html").read_text()
    assert "Your score:" in page and "not graded yet" in page
    summary = page[page.index("Your score:"):]
    summary = summary[: summary.index("</table>")]
    for task in ("3(a)", "3(b)", "3(c)", "3(d)", "3(e)"):
        assert re.search(rf"<td[^>]*>{re.escape(task)}</td>", summary)
    assert summary.count("\u2718") == 0  # the marks themselves are not repeated, the comments are
    assert "BEGIN HIDDEN TESTS" not in page and "Mark scheme" not in page
    quiz = (root / "feedback" / "example_ben" / "exam" / "4_true_false_quiz.html").read_text()
    quiz_summary = quiz[quiz.index("Your score:"):quiz.index("</table>", quiz.index("Your score:"))]
    assert "3 right, 1 wrong, 1 unanswered: 3 - 0.5 x 1 = 2.5" in quiz_summary  # an awarded amount says why


def test_manual_grading_sheet_round_trip(main_job, tmp_path):
    from coursekit import manual

    root = tmp_path / "course"
    shutil.copytree(main_job[0], root, symlinks=True)
    sheet = manual.write_sheet(root, "exam", "svhn_a_answer")
    rows = read_csv(sheet)
    assert {r["student_id"] for r in rows} >= {"example_ada", "example_ben", "example_emil"}
    ada = next(r for r in rows if r["student_id"] == "example_ada")
    assert "1024" in ada["answer"] and ada["max_points"] == "3" and ada["score"] == ""
    assert "Mark scheme" in sheet.with_name("svhn_a_answer-mark-scheme.md").read_text()

    def fill(scores):
        for r in rows:
            r["score"], r["comment"] = scores.get(r["student_id"], ("", ""))
        with open(sheet, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    fill({"example_ada": ("3", "all right"), "example_ben": ("4", "too many")})
    with pytest.raises(ValueError, match="not between 0 and 3"):
        manual.import_sheet(root, sheet)
    untouched = {s: {r.grade_id: r.score for r in rows} for s, rows in course.cell_scores(root, "exam").items()}
    assert untouched["example_ada"]["svhn_a_answer"] is None  # nothing was written
    assert untouched["example_ben"]["svhn_a_answer"] is None

    fill({"example_ada": ("3", "all right"), "example_ben": ("1,5", "the padding of the width is 0, not 2")})
    imported = manual.import_sheet(root, sheet)
    assert imported.count == 2 and "example_chloe" in imported.blank  # rows left blank are named, not skipped silently
    scores = {s: {r.grade_id: r.score for r in rows} for s, rows in course.cell_scores(root, "exam").items()}
    assert scores["example_ada"]["svhn_a_answer"] == 3 and scores["example_ben"]["svhn_a_answer"] == 1.5
    course.nbgrader(root, "generate_feedback", "exam", "--student=example_ben", "--force")
    page = (root / "feedback" / "example_ben" / "exam" / "3_svhn_cnn.html").read_text()
    assert "the padding of the width is 0, not 2" in page


def test_manual_sheet_saved_by_a_european_spreadsheet(main_job, tmp_path):
    """Excel with a German or French locale saves with ';' and decimal commas."""
    from coursekit import manual

    root = tmp_path / "course"
    shutil.copytree(main_job[0], root, symlinks=True)
    sheet = manual.write_sheet(root, "exam", "svhn_a_answer")
    rows = read_csv(sheet)
    for r in rows:
        r["score"], r["comment"] = ("2,5", "gut; fast alles") if r["student_id"] == "example_ada" else ("", "")
    with open(sheet, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    imported = manual.import_sheet(root, sheet)
    assert imported.count == 1 and len(imported.blank) == len(rows) - 1
    scores = {s: {r.grade_id: r.score for r in rows} for s, rows in course.cell_scores(root, "exam").items()}
    assert scores["example_ada"]["svhn_a_answer"] == 2.5


def test_instructor_report(main_job):
    from coursekit import report

    root = main_job[0]
    page = (root / "reports" / "exam" / "instructor-report.html").read_text()
    assert page.count("<img") >= 3  # score distributions, difficulty/discrimination, the quiz
    for task in ("1(c)", "2(d)", "3(d)", "4(a)"):
        assert f"<td>{task}" in page
    quiz = report.quiz_outcomes(root, "exam")
    students = len(examples.students(root))
    assert set(quiz) == {"answers_4a", "answers_4b", "answers_4c", "answers_4d"}
    for statements in quiz.values():
        for counts in statements.values():
            assert sum(counts.values()) == students
    # example_emil left everything unanswered; example_chloe answered all of 4(a) wrongly
    assert all(c["unanswered"] >= 1 for c in quiz["answers_4a"].values())
    assert all(c["wrong"] >= 1 for c in quiz["answers_4a"].values())
    tasks, _ = report.gather(root, "exam")
    d = next(t for t in tasks if t.notebook == "3_svhn_cnn" and t.label == "3(d)")
    assert d.deductions and 0 < d.difficulty < 1
    # a text answer still waiting for its grader has no difficulty yet (not the 0 of the blank answers)
    assert next(t for t in tasks if t.label == "3(a)").difficulty is None
    assert re.search(r"<td>3\(a\) \(text\)</td><td>3</td>\s*<td>&ndash;</td>", page)


def test_instructor_report_warns_about_broken_tasks():
    from coursekit.report import Task, warnings

    def task(label, scores, errors=0, manual=False):
        return Task("nb", label, manual, 2.0, dict(enumerate(scores)), errors=errors)

    found = warnings([task("1(a)", [0, 0, 0, 0]), task("1(b)", [2, 2, 2, 2]), task("1(c)", [1, 0, 2, 1], errors=3),
                      task("1(d)", [1, 0, 2, 1]), task("1(e)", [0, 0, 0, 0], manual=True)])
    assert found == ["nb 1(a): nobody scored (check the test and the reference)",
                     "nb 1(b): every student got full points (does the test check anything?)",
                     "nb 1(c): the test cell ended in an error for 3 of 4 students"]


def test_similarity_report(main_job):
    from coursekit import similarity

    root = main_job[0]
    page = (root / "reports" / "exam" / "similarity-report.html").read_text()
    pairs = similarity.find_pairs(root, "exam")
    # the example students' answers all come from the solution: their pairs are found, the untouched one is not
    names = {p.a for p in pairs} | {p.b for p in pairs}
    assert {"example_ada", "example_ben", similarity.SOLUTION} <= names
    assert "example_emil" not in names
    assert pairs == sorted(pairs, key=lambda p: -p.score)
    # ... and explained by the solution, so no pair of students is listed
    assert "No two students overlap unusually in any task" in page
    view = similarity.pair_report(root, "exam", "example_ada", "example_ben").read_text()
    assert "<mark>" in view and "3(d)" in view


def test_similarity_sees_through_renaming_and_ignores_the_template():
    from coursekit.similarity import compare

    template = "def normalise(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    original = """def normalise(x):
    total = 0.0
    for i in range(len(x)):
        if x[i] > 0:
            total += x[i] * 2
        else:
            total -= x[i]
    mean = total / max(1, len(x))
    return [value / mean for value in x]
"""
    renamed = original.replace("total", "acc").replace("mean", "m").replace("value", "v")
    other = """def normalise(x):
    import numpy as np
    arr = np.asarray(x, dtype=float)
    scale = np.where(arr > 0, 2 * arr, -arr).mean()
    return list(arr / scale)
"""
    pairs = {(p.a, p.b): p for p in compare({"ann": original, "bob": renamed, "cat": other, "dan": template,
                                             "eve": template}, template, "nb", "1(a)", min_tokens=10)}
    assert pairs[("ann", "bob")].score > 0.9
    assert ("dan", "eve") not in pairs  # the code everybody was given is not a similarity
    assert all(p.score < 0.5 for key, p in pairs.items() if "cat" in key)


def test_feedback_in_a_browser(main_job, tmp_path):
    browser.require_browser()
    from selenium.webdriver.common.by import By

    page = main_job[0] / "feedback" / "example_ben" / "exam" / "3_svhn_cnn.html"
    with browser.chromium() as driver:
        driver.get(page.as_uri())
        summary = driver.find_element(By.TAG_NAME, "table")
        assert summary.is_displayed() and summary.location["y"] < 600  # on top, visible without scrolling
        assert "3(d)" in summary.text and "not graded yet" in summary.text
        heading = driver.find_element(By.XPATH, "//*[contains(text(), 'Your score:')]")
        assert heading.is_displayed()
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "BEGIN HIDDEN TESTS" not in body and "Mark scheme" not in body
        assert "\u2718" in body  # the rubric lines of the hidden tests are shown
        # an answer no grader has scored yet shows "not graded yet", not nbgrader's "Score: 0.0 / 3.0"
        assert "(not graded yet)" in body  # (a blank answer, scored 0 by nbgrader itself, keeps its score)
        assert not re.search(r"Student's answer\s*Score: 0\.0 / 3\.0\s*\(Top\)\s*more epochs", body)
        browser.screenshot(driver, tmp_path, "feedback-example_ben-3_svhn_cnn")
        driver.get((main_job[0] / "feedback" / "example_ben" / "exam" / "4_true_false_quiz.html").as_uri())
        padding = driver.execute_script(  # the quiz's markdown table ("your answer | marks") has cell spacing
            "const td = [...document.querySelectorAll('td')].find(c => c.textContent.trim() === 'right');"
            "return td ? getComputedStyle(td).paddingLeft : null;")
        assert padding and float(padding.rstrip("px")) >= 3, padding
        browser.screenshot(driver, tmp_path, "feedback-example_ben-4_true_false_quiz")


def test_manual_grading_in_the_formgrader(main_job, tmp_path):
    browser.require_browser()
    from nbgrader.api import Gradebook
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    root = tmp_path / "course"
    shutil.copytree(main_job[0], root, symlinks=True)
    database = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(database) as gb:
        submission = gb.find_submission_notebook("3_svhn_cnn", "exam", "example_ben").id

    def saved():
        with Gradebook(database) as gb:
            grade = gb.find_grade("svhn_a_answer", "3_svhn_cnn", "exam", "example_ben")
            comment = gb.find_comment("svhn_a_answer", "3_svhn_cnn", "exam", "example_ben")
            return grade.manual_score, comment.manual_comment

    assert saved() == (None, None)
    remark = "The width is not padded: 128 x 8 x 1, so K = 1024."
    with browser.jupyter_server(root) as url, browser.chromium() as driver:
        driver.get(f"{url}/formgrader/submissions/{submission}/?index=0")
        score = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "svhn_a_answer"))
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Mark scheme" in text  # the grader sees the mark scheme ...
        assert "O x K = 10 x 1024" in text
        assert "32x32 -> 32x32 -> 16x16" in text  # ... beside the student's answer
        padding = driver.execute_script(  # the mark scheme's table has cell spacing ("conv1 | 32 x ...", not "conv132 x")
            "const td = [...document.querySelectorAll('td')].find(c => c.textContent.trim() === 'conv1');"
            "return td ? getComputedStyle(td).paddingLeft : null;")
        assert padding and float(padding.rstrip("px")) >= 3, padding
        score.clear()
        score.send_keys("1.5", Keys.TAB)  # leaving a field saves it
        comment = driver.find_element(By.ID, "svhn_a_answer-comment")
        comment.clear()
        comment.send_keys(remark, Keys.TAB)
        for _ in range(60):
            if saved() == (1.5, remark):
                break
            time.sleep(0.5)
        browser.screenshot(driver, tmp_path, "formgrader-example_ben-3_svhn_cnn")
    assert saved() == (1.5, remark)

    course.nbgrader(root, "generate_feedback", "exam", "--student=example_ben", "--force")
    page = (root / "feedback" / "example_ben" / "exam" / "3_svhn_cnn.html").read_text()
    row = re.search(r"<td[^>]*>3\(a\)</td>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>", page, re.S)
    assert row and row.group(1).strip() == "1.5 / 3" and remark.replace("'", "&#x27;") in row.group(2)


def test_parallel_grading_with_warm_kernels_gives_the_scores_of_a_cold_sequential_run(main_job, tmp_path):
    parallel_root = main_job[0]  # graded by the main job: two workers, warm kernels (the default)
    root = course_with_examples(tmp_path / "sequential")
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    pipeline.collect_examples(root)
    outcomes = autograde.autograde(root, "exam", workers=1, progress=False, canary=False,
                                   env={"COURSEKIT_WARM_KERNELS": "0"})
    def kernels(course_root):
        return {nbformat.read(p, as_version=4).metadata.coursekit.warm_kernel
                for p in (course_root / "autograded").glob("*/exam/*.ipynb")}

    assert kernels(root) == {False} and kernels(parallel_root) == {True}
    assert {o.status for o in outcomes} == {"graded"}
    def by_cell(scores):
        return {student: {(r.notebook, r.grade_id): r.score for r in rows} for student, rows in scores.items()}

    assert by_cell(course.cell_scores(root, "exam")) == by_cell(course.cell_scores(parallel_root, "exam"))


def test_a_second_run_resumes_and_regrades_only_what_changed(main_job):
    root = main_job[0]
    again = autograde.autograde(root, "exam", students="example_*", workers=2, progress=False)
    assert {o.status for o in again} == {"skipped"}
    changed = root / "submitted" / "example_ben" / "exam" / "3_svhn_cnn.ipynb"
    nb = nbformat.read(changed, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("a late afterthought"))
    nbformat.write(nb, changed)
    again = autograde.autograde(root, "exam", students="example_*", workers=2, progress=False)
    assert {o.student for o in again if o.status == "graded"} == {"example_ben"}


def test_an_unreadable_upload_is_reported_and_the_rest_is_graded(main_job):
    root = main_job[0]
    folder = root / "submitted" / "example_zoe" / "exam"
    folder.mkdir(parents=True)
    (folder / "3_svhn_cnn.ipynb").write_text('{"cells": [')
    (folder / "4_true_false_quiz.ipynb").write_bytes(b"%PDF-1.4 not a notebook")
    outcomes = {o.student: o for o in autograde.autograde(root, "exam", workers=2, progress=False)}
    zoe = outcomes["example_zoe"]
    assert any("3_svhn_cnn.ipynb is not a readable notebook" in p for p in zoe.problems)
    assert (folder / "3_svhn_cnn.ipynb.unreadable").exists()
    assert all(o.status in ("graded", "skipped") for name, o in outcomes.items() if name != "example_zoe")
    report = (root / "reports" / "exam" / "grading-report.md").read_text()
    assert "example_zoe" in report and "not a readable notebook" in report


def test_a_student_whose_notebooks_are_all_renamed_is_graded(main_job):
    root = main_job[0]
    folder = root / "submitted" / "example_yan" / "exam"
    folder.mkdir(parents=True)
    ada = root / "examples" / "submissions" / "example_ada" / "exam"
    shutil.copy(ada / "1_gradcam.ipynb", folder / "Copy of 1_gradcam.ipynb")  # as Colab names a copy
    shutil.copy(ada / "4_true_false_quiz.ipynb", folder / "4_true_false_quiz (1).ipynb")  # a second download
    outcomes = {o.student: o for o in autograde.autograde(root, "exam", students="example_yan", progress=False)}
    assert outcomes["example_yan"].status == "graded", outcomes["example_yan"].message
    auto = {}
    for r in course.cell_scores(root, "exam")["example_yan"]:
        if r.auto:
            auto[r.notebook] = auto.get(r.notebook, 0) + r.score
    assert auto["1_gradcam"] == 14 and auto["4_true_false_quiz"] == 22  # ada's code is all right
    report = (root / "reports" / "exam" / "grading-report.md").read_text()
    assert "Copy of 1_gradcam.ipynb was graded as 1_gradcam.ipynb" in report
    assert "4_true_false_quiz (1).ipynb was graded as 4_true_false_quiz.ipynb" in report

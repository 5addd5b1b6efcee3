"""The real nbgrader commands on a throw-away course: solution, untouched release, known mistakes."""

from __future__ import annotations

import re

import pytest

from coursekit import course

from .conftest import all_mistakes


def auto_cells(rows, notebook=None):
    return [r for r in rows if r.auto and (notebook is None or r.notebook == notebook)]


def test_solution_earns_every_automatic_point(graded_course):
    _, scores = graded_course
    for assignment, students in scores.items():
        rows = students["solution"]
        lost = [(r.notebook, r.grade_id, r.score, r.max_score) for r in auto_cells(rows) if r.score != r.max_score]
        assert not lost, f"{assignment}: the solution lost points: {lost}"
        text = [r for r in rows if not r.auto]
        assert text and all(r.score is None for r in text), "text answers must wait for manual grading"


def test_untouched_release_scores_zero(graded_course):
    _, scores = graded_course
    for assignment, students in scores.items():
        earned = [(r.notebook, r.grade_id, r.score) for r in students["untouched"] if r.score != 0]
        assert not earned, f"{assignment}: the untouched release earned points: {earned}"


@pytest.mark.parametrize("assignment,mistake", all_mistakes(), ids=[m.id for _, m in all_mistakes()])
def test_known_mistake_loses_exactly_its_points(graded_course, assignment, mistake):
    _, scores = graded_course
    rows = auto_cells(scores[assignment][mistake.id], mistake.notebook)
    assert rows, f"no automatically graded cells for {mistake.notebook}"
    got = {r.grade_id: r.score for r in rows}
    expected = {r.grade_id: mistake.expect.get(r.grade_id, r.max_score) for r in rows}
    assert got == expected, f"{mistake.what}: scores {got}, expected {expected}"


def test_feedback_shows_scores_and_comments_but_no_tests_or_mark_schemes(graded_course, offline_env):
    root, scores = graded_course
    for assignment in scores:
        course.nbgrader(root, "generate_feedback", assignment, "--force", env=offline_env)
    pages = sorted((root / "feedback").glob("*/*/*.html"))
    assert pages, "no feedback was written"
    for page in pages:
        html = page.read_text()
        for leak in ("BEGIN HIDDEN TESTS", "Rubric(", "rubric.check", "coursekit", "MARK SCHEME", "Mark scheme"):
            assert leak not in html, f"{page.relative_to(root)} shows {leak!r}"
        assert re.search(r"Score: [\d.]+ / [\d.]+", html), f"{page.relative_to(root)} shows no scores"
    # every deduction comes with the grader's comment
    wrong = (root / "feedback" / "svhn_eval_in_train_mode" / "exam" / "3_svhn_cnn.html").read_text()
    assert "model left in training mode for testing" in wrong
    assert "3(e): 5 / 6 points" in wrong


def test_colab_saved_solution_earns_exactly_the_jupyter_saved_score(graded_course):
    _, scores = graded_course
    for assignment, students in scores.items():
        jupyter = {(r.notebook, r.grade_id): r.score for r in students["solution"]}
        colab = {(r.notebook, r.grade_id): r.score for r in students["solution_colab"]}
        assert colab == jupyter, f"{assignment}: Colab-saved {colab} vs Jupyter-saved {jupyter}"

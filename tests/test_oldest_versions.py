"""The notebooks on the oldest torch and torchvision they support (requirements-oldest.txt), and their grades when
the student's versions are not the grader's (coursekit/oldest.py).  Slow: the first run installs a second
environment (about 3 GB from PyPI, cached in ~/.cache/coursekit); it runs in CI."""

from __future__ import annotations

import time

import pytest

from coursekit import course, oldest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, offline_env):
    started = time.monotonic()
    result = {(o.assignment, o.notebook): o for o in oldest.check(tmp_path_factory.mktemp("oldest"), offline_env)}
    print(f"oldest versions: {time.monotonic() - started:.0f} s")
    return result


def test_every_notebook_is_checked(outcomes):
    assert set(outcomes) == {(a, nb) for a in course.assignments(course.ROOT)
                             for nb in course.released_notebooks(course.ROOT, a)}


@pytest.mark.parametrize("assignment,notebook", [(a, nb) for a in course.assignments(course.ROOT)
                                                  for nb in course.released_notebooks(course.ROOT, a)])
def test_the_solution_earns_every_point_with_the_oldest_versions(outcomes, assignment, notebook):
    outcome = outcomes[(assignment, notebook)]
    pins = oldest.pins()
    if "torch" in outcome.versions:  # the setup cell prints the versions it runs with (not the quiz's)
        assert f"torch {pins['torch']}" in outcome.versions, outcome.versions
    assert outcome.scores and all(score == points for score, points in outcome.scores.values()), outcome.scores
    assert not outcome.problems, outcome.problems
    assert "WARNING" not in outcome.versions  # the oldest supported versions are inside the range


@pytest.mark.parametrize("assignment,notebook", [(a, nb) for a, nbs in oldest.STUDENT_RUNS.items() for nb in nbs])
def test_run_by_a_student_there_it_is_all_clear_and_graded_here_it_keeps_every_point(outcomes, assignment, notebook):
    outcome = outcomes[(assignment, notebook)]
    assert outcome.checklist.startswith(f"Check before you upload {notebook}.ipynb: all clear"), outcome.checklist
    assert outcome.graded and all(score == points for score, points in outcome.graded.values()), outcome.graded
    assert outcome.ok

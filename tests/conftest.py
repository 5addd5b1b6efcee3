"""Shared fixtures: offline data and a throw-away course graded by the real nbgrader commands."""

from __future__ import annotations

import os
import shutil

import pytest

from coursekit import course, examples, offline, pipeline, submissions, trial

ROOT = course.ROOT
SHARED_DATA = ROOT.parent / "shared" / "data"

# nbgrader's Gradebook runs `alembic` when it creates a database: the tests that build one in this process find it
# beside this Python, as the kit's own nbgrader commands do (course.command_env), also when the venv is not activated.
os.environ["PATH"] = course.command_env()["PATH"]


def absent(path) -> bool:
    """Whether a test on the real data at ``path`` (in ../shared/data) is skipped: when the data is absent, except
    in CI, which has ../shared beside its clone, so there the test runs and fails."""
    return not path.exists() and os.environ.get("CI") != "true"


def all_mistakes() -> list[tuple[str, submissions.Mistake]]:
    return [(assignment, m) for assignment in course.assignments(ROOT)
            for m in examples.mistakes(ROOT, assignment).values()]


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory) -> dict[str, str]:
    """Fixture datasets and weights in the real formats, and the environment pointing at them."""
    return offline.prepare(tmp_path_factory.mktemp("offline-data"))


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory, offline_env):
    """A course copy in which students `solution`, `untouched` and one per known mistake were autograded.

    Returns ``(root, {assignment: {student: [CellScore, ...]}})`` read from the gradebook.
    """
    return trial.grade(tmp_path_factory.mktemp("course"), offline_env)


def course_with_examples(target):
    """A throw-away copy of the course with the example students (``examples/``)."""
    root = course.copy_course(ROOT, target)
    shutil.copytree(ROOT / "examples", root / "examples")
    return root


@pytest.fixture(scope="session")
def main_job(tmp_path_factory):
    """The main job run on a course copy: ``(root, score table, what it printed)``."""
    root = course_with_examples(tmp_path_factory.mktemp("main-job"))
    lines = []
    table = pipeline.grade_examples(root, say=lines.append)
    return root, table, "\n".join(lines)

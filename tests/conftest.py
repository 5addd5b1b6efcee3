"""Shared fixtures: offline data and a throw-away course graded by the real nbgrader commands."""

from __future__ import annotations

import os

import pytest

from coursekit import course, examples, offline, submissions, trial

ROOT = course.ROOT
SHARED_DATA = ROOT.parent / "shared" / "data"


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

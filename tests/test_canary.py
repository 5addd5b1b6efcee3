"""The canary: before the students, the solution and the untouched release are graded in the same environment."""

from __future__ import annotations

import re
import shutil

import pytest

from coursekit import autograde, canary, course

ROOT = course.ROOT


def one_notebook_course(tmp_path):
    """A course copy whose exam is only 1_gradcam (the canary grades every notebook of the assignment)."""
    root = course.copy_course(ROOT, tmp_path / "course")
    config = root / "nbgrader_config.py"
    text = re.sub(r'"exam": \[[^\]]*\]', '"exam": ["1_gradcam"]', config.read_text())
    config.write_text(text)
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    student = root / "submitted" / "zoe" / "exam"
    student.mkdir(parents=True)
    shutil.copy(root / "release" / "exam" / "1_gradcam.ipynb", student)
    return root


def test_a_broken_environment_stops_grading_before_the_students_and_says_why(tmp_path):
    """The weights of the pretrained network are not there (and the sandbox has no network): the solution loses
    points, so grading stops before any student is graded."""
    root = one_notebook_course(tmp_path)
    empty = {"COURSE_DATA_DIR": str(tmp_path / "no-data"), "TORCH_HOME": str(tmp_path / "no-weights")}
    with pytest.raises(canary.CanaryFailed) as failed:
        autograde.autograde(root, "exam", env=empty, progress=False)
    message = str(failed.value)
    assert "the solution of 1_gradcam scored" in message and "Nothing was graded" in message
    assert "not checked" in message or "Error" in message  # what the hidden tests said
    assert not (root / "autograded" / "zoe").exists()


def test_a_working_environment_passes_once_and_is_remembered(tmp_path, offline_env):
    root = one_notebook_course(tmp_path)
    said = []
    outcomes = autograde.autograde(root, "exam", env=offline_env, progress=False, say=said.append)
    assert [o.status for o in outcomes] == ["graded"]
    assert any("the solution earned every automatic point and the untouched release none" in s for s in said)
    said.clear()
    autograde.autograde(root, "exam", env=offline_env, progress=False, force=True, say=said.append)
    assert any("passed before" in s for s in said)

"""The kernels of student notebooks run in a bubblewrap sandbox."""

from __future__ import annotations

import ast

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from coursekit import sandbox
from coursekit.course import ROOT
from coursekit.execute import SafeExecute

pytestmark = pytest.mark.skipif(not sandbox.bwrap_works(), reason="bubblewrap is not available")

PROBE = r'''
import os, socket
seen = {}
for name, path in PATHS.items():
    try:
        seen[name] = sorted(os.listdir(path))
    except OSError as e:
        seen[name] = type(e).__name__
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    seen["network"] = "open"
except OSError as e:
    seen["network"] = type(e).__name__
for name, path in {"write_here": "mine.txt", "write_outside": OUTSIDE, "write_kit": KIT}.items():
    try:
        open(path, "w").write("x")
        seen[name] = "written"
    except OSError as e:
        seen[name] = type(e).__name__
import coursekit.kernel.grading, torch
seen["kit"] = "importable"
try:
    import coursekit.execute
    seen["grader"] = "importable"
except ImportError as e:
    seen["grader"] = type(e).__name__
seen
'''


def run_probe(tmp_path, outside):
    paths = {"source": str(ROOT / "source"), "course": str(ROOT), "other_student": str(tmp_path / "other")}
    (tmp_path / "other").mkdir()
    (tmp_path / "mine").mkdir()
    code = (PROBE.replace("PATHS", repr(paths)).replace("OUTSIDE", repr(str(outside)))
            .replace("KIT", repr(str(ROOT / "coursekit" / "kernel" / "sandbox-escape.txt"))))
    nb = new_notebook(cells=[new_code_cell(code)])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb, _ = SafeExecute(timeout=60).preprocess(nb, {"metadata": {"path": str(tmp_path / "mine")}})
    result = [o for o in nb.cells[0].outputs if o.output_type == "execute_result"]
    assert result, nb.cells[0].outputs
    return ast.literal_eval(result[0].data["text/plain"])


def test_student_code_sees_only_its_own_folder_and_no_network(tmp_path):
    outside = ROOT / "sandbox-escape.txt"
    seen = run_probe(tmp_path, outside)
    assert seen["source"] == seen["other_student"] == "FileNotFoundError"
    # the course folder holds only what the kernel needs: the kit, the venv where it lives there, and the data
    # caches (data/, read-only) when COURSE_DATA_DIR points there
    assert set(seen["course"]) <= {"coursekit", ".venv", "data"}, seen["course"]
    assert seen["network"] != "open"
    assert seen["write_here"] == "written" and (tmp_path / "mine" / "mine.txt").exists()
    assert not outside.exists() and not (ROOT / "coursekit" / "kernel" / "sandbox-escape.txt").exists()
    assert seen["write_kit"] != "written"  # the kit is mounted read-only
    if not ROOT.resolve().is_relative_to("/tmp"):
        # (a course under /tmp sits in the sandbox's private, throw-away /tmp: a write there succeeds
        # but never reaches the disk, as the line above checks)
        assert seen["write_outside"] != "written"
    assert seen["kit"] == "importable"
    assert seen["grader"] == "ModuleNotFoundError"  # the grader's own code is not in the sandbox


def test_without_bubblewrap_grading_stops_unless_the_instructor_accepts_it(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "bwrap_works", lambda *a: False)
    manager = sandbox.SandboxKernelManager()
    with pytest.raises(RuntimeError, match="No sandbox for the students' notebooks"):
        manager._use_sandbox()
    manager.require_sandbox = False
    assert manager._use_sandbox() is False
    assert "WITHOUT a sandbox" in capsys.readouterr().err


def execute(folder, *cells, warm=True):
    from traitlets.config import Config

    nb = new_notebook(cells=[new_code_cell(code) for code in cells])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    config = Config({"SandboxKernelManager": {"warm": warm}})
    nb, _ = SafeExecute(timeout=60, config=config).preprocess(nb, {"metadata": {"path": str(folder)}})
    values = [ast.literal_eval(o.data["text/plain"]) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "execute_result"]
    return nb.metadata["coursekit"]["warm_kernel"], values


def test_warm_kernels_are_fresh_forks_in_one_sandbox_per_student(tmp_path):
    student, other = tmp_path / "student", tmp_path / "other"
    student.mkdir(), other.mkdir()
    first = ("import sys, subprocess; preloaded = 'matplotlib' in sys.modules\n"
             "import torch; torch.leftover = 1\n"
             "daemon = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
             "open('daemon.pid', 'w').write(str(daemon.pid)); preloaded")
    warm, values = execute(student, first)
    assert warm and values == [True]  # matplotlib was imported before (the guard imports torch itself)
    daemon = (student / "daemon.pid").read_text()
    later = f"import os, torch; (hasattr(torch, 'leftover'), os.path.exists('/proc/{daemon}'), os.getcwd())"
    warm, values = execute(student, later)
    assert warm and values == [(False, False, str(student))]  # nothing of the notebook before, its daemon gone
    _, values = execute(other, "import os; sorted(os.listdir('..'))")
    assert "other" in values[0] and "student" not in values[0]  # another student: another sandbox
    cold, values = execute(student, "import sys; 'matplotlib' in sys.modules", warm=False)
    assert not cold and values == [False]


def test_student_code_does_not_see_the_graders_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("COURSEKIT_DB_URL", "postgresql+psycopg://grader@db.example.org/course")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    probe = "import os; sorted(k for k in os.environ if k in ('PGPASSWORD', 'COURSEKIT_DB_URL', 'GITHUB_TOKEN'))"
    for warm in (True, False):
        _, values = execute(tmp_path, probe, warm=warm)
        assert values == [[]], (warm, values)

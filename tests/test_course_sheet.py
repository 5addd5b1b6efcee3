"""The course sheet (``python -m coursekit course-sheet``): the course rules applied to the points in a real gradebook,
worked through by hand for five students of a tiny course (tests/tiny_course.py)."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from coursekit import course, coursesheet
from tests import tiny_course


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_course.build(tmp_path_factory.mktemp("sheet") / "course")


def by_student(rows):
    return {r["student_id"]: r for r in rows}


def test_worked_example_with_bonus_and_transfer(tiny):
    """Rules: practicals = lab1 + lab2, passed with 80 points without bonus; of a passed practicals up to 40 points
    above 80, bonus included, go to the exam as bonus; the exam is passed with 25 points, bonus included."""
    rows = by_student(coursesheet.sheet(tiny)[1])
    ada, ben, cy, dee, eve = (rows[s] for s in ("ada", "ben", "cy", "dee", "eve"))
    # ada: lab1 30 + 20 (+1 bonus), lab2 25 + 10 (+2 bonus) = 85 + 3: passed, 85 + 3 - 80 = 8 go to the exam
    assert (ada["lab1"], ada["lab1 bonus"], ada["lab2"], ada["lab2 bonus"]) == ("50", "1", "35", "2")
    assert (ada["practicals: points"], ada["practicals: bonus"], ada["practicals: result"]) == ("85", "3", "passed")
    assert ada["practicals: to exam"] == "8"
    # ada's exam: 20 points + 8 transferred = 28 >= 25: passed thanks to the transfer
    assert (ada["exam"], ada["exam: points"], ada["exam: bonus"], ada["exam: result"]) == ("20", "20", "8", "passed")
    assert "8 transferred in" in ada["exam: reason"]
    # ben: 49 + 30 = 79 and 5 bonus: 84 with bonus, but the bonus does not count toward the 80: not passed, no transfer
    assert (ben["practicals: points"], ben["practicals: bonus"], ben["practicals: result"]) == ("79", "5", "not passed")
    assert ben["practicals: reason"] == "79 points (bonus 5 not counted), 80 needed"
    assert ben["practicals: to exam"] == "0" and ben["exam: bonus"] == "0"
    # cy: 120 + 10 bonus = 130, 50 above 80, capped at 40; the exam's 10 + 40 = 50 passes
    assert (cy["practicals: result"], cy["practicals: to exam"], cy["exam: bonus"], cy["exam: result"]) == (
        "passed", "40", "40", "passed")
    # dee: a text answer of lab1 not graded yet: open, neither passed nor failed, and no transfer yet
    assert (dee["practicals: result"], dee["practicals: to exam"]) == ("open", "")
    assert dee["practicals: reason"] == "text answers not graded yet: lab1 (1)"
    # eve: lab2 and the exam not submitted: 0 for them, said in the reason
    assert (eve["lab2"], eve["practicals: points"], eve["practicals: result"]) == ("", "60", "not passed")
    assert "not submitted: lab2" in eve["practicals: reason"] and eve["exam: result"] == "not passed"


def test_the_sheet_uses_the_numbers_of_the_per_task_export(tiny):
    """``nbgrader export`` (the kit's plugin) and the course sheet agree: an assignment's points on the sheet are its
    ``total`` minus ``bonus`` in ``grades/<assignment>-tasks.csv``."""
    course.nbgrader(tiny, "export")
    rows = by_student(coursesheet.sheet(tiny)[1])
    for assignment in ("lab1", "lab2", "exam"):
        with open(tiny / "grades" / f"{assignment}-tasks.csv", newline="") as f:
            for task_row in csv.DictReader(f):
                mine = rows[task_row["student_id"]]
                if task_row["submitted"] == "no":
                    assert mine[assignment] == ""
                else:
                    assert float(mine[assignment]) == float(task_row["total"]) - float(task_row["bonus"])
                    assert float(mine[f"{assignment} bonus"]) == float(task_row["bonus"])


def test_command_writes_csv_and_page(tiny):
    done = subprocess.run([sys.executable, "-m", "coursekit", "--root", str(tiny), "course-sheet"],
                          check=False, capture_output=True, text=True, env=course.command_env())
    assert done.returncode == 0, done.stderr
    with open(tiny / "grades" / "course-sheet.csv", newline="") as f:
        rows = by_student(csv.DictReader(f))
    assert rows["ada"]["practicals: to exam"] == "8" and rows["ben"]["practicals: result"] == "not passed"
    page = (tiny / "reports" / "course-sheet.html").read_text()
    assert "up to 40 points above 80 (bonus included) are transferred to exam" in page
    assert '<td class="open">open</td>' in page and "Lovelace" in page


def test_rules_are_checked(tiny, tmp_path):
    root = tiny_course.build(tmp_path / "course", grades={})
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text().replace('"pass_at": 80,', '"pass_at": 80, "passat": 70,'))
    with pytest.raises(ValueError, match="unknown keys \\['passat'\\]"):
        coursesheet.sheet(root)
    config.write_text(config.read_text().replace('"lab1", "lab2"', '"lab1", "lab9"').replace(' "passat": 70,', ""))
    with pytest.raises(ValueError, match="lab9"):
        coursesheet.sheet(root)

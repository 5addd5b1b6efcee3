"""Group work: a group's notebooks are graded once, and every member gets the group's result.

``python -m coursekit groups <assignment> [--groups groups.csv]``, after autograding and again after the text answers
are graded (before ``nbgrader export`` and ``generate_feedback``):

* the groups come from a CSV (first column the group id, the other columns its members' student ids, several in one
  cell separated by spaces, commas or semicolons; a header ``group,members`` is skipped) and from the names of the
  uploads: a zip or folder named ``<sheet>-<lastname>-<lastname>[-...]`` (``ex08-jordan-hinton-lovelace.zip``), as
  ``import-lms`` recorded it, whose last names are looked up among the gradebook's students (``import-lms`` puts the
  platform's names there);
* the one member who handed in (``submitted/<member>/<assignment>/``) is the group's submitter: the other members get
  a copy of the submitter's graded notebooks (``autograded/``) and, in the gradebook, of every automatic and manual
  score, extra credit and comment; so the per-task export, the platform files and the feedback give each the
  group's result.  ``submitted/`` is left alone: autograding grades the group once.
* conflicts are reported and that group is left alone, never guessed: a student in two groups, a member who also
  handed in alone (two members with a submission), a name or id that matches no student (or several).

Writes ``grades/<assignment>-groups.csv`` (per member: group, submitter, result) and
``reports/<assignment>/groups-report.md``.  A copy made by an earlier run whose group has changed since, or now has a
conflict, is removed (gradebook and ``autograded/``).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from . import course

ZIP_NAME = re.compile(r"^[^\W_]*\d+[^\W_]*-(?P<names>[^\W\d_]+(?:-[^\W\d_]+)+)(?:\.zip)?$", re.IGNORECASE)  # ex08-a-b-c


def read_csv(path: str | Path) -> dict[str, list[str]]:
    """``{group: [member, ...]}`` from a groups CSV (members as written; see the module docstring)."""
    groups: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, row in enumerate(csv.reader(f)):
            if not row or not row[0].strip():
                continue
            if number == 0 and row[0].strip().lower() in ("group", "group id", "group_id", "id"):
                continue
            members = [m for cell in row[1:] for m in re.split(r"[\s,;]+", cell) if m]
            groups.setdefault(row[0].strip(), []).extend(members)
    return groups


def from_uploads(root: Path, assignment: str, students) -> tuple[dict[str, list[str]], list[str]]:
    """Groups named by the uploads (``ex08-jordan-hinton-lovelace.zip``, in ``import-lms``'s log): ``({group:
    [student id, ...]}, problems)``; ``students``: the gradebook's students."""
    log = root / "downloaded" / assignment / "intake.jsonl"
    if not log.exists():
        return {}, []
    by_last: dict[str, list[str]] = {}
    for s in students:
        if s.last_name:
            by_last.setdefault(s.last_name.strip().lower(), []).append(s.id)
    groups, problems = {}, []
    for line in log.read_text().splitlines():
        decision = json.loads(line)
        if decision.get("decision") != "imported":
            continue
        for part in Path(decision["file"]).parts[:-1]:
            match = ZIP_NAME.match(part)
            if not match or part in groups:
                continue
            members = []
            for name in match.group("names").lower().split("-"):
                found = by_last.get(name, [])
                if len(found) != 1:
                    which = "several students: " + ", ".join(found) if found else "no student"
                    problems.append(f"{part}: the name '{name}' matches {which}")
                    break
                members.append(found[0])
            else:
                if decision["student"] not in members:
                    problems.append(f"{part}: uploaded by {decision['student']}, who is not among its names")
                else:
                    groups[part] = members
    return groups, problems


def plan(root: Path, assignment: str, groups: dict[str, list[str]], students: set[str]) -> tuple[dict, list[str]]:
    """``({group: (submitter, [other members])}, conflicts)`` for the groups without a conflict."""
    conflicts, seen = [], {}
    for group, members in groups.items():
        for member in dict.fromkeys(members):
            seen.setdefault(member, []).append(group)
    twice = {m: g for m, g in seen.items() if len(g) > 1}
    for member, in_groups in sorted(twice.items()):
        conflicts.append(f"{member} is in {len(in_groups)} groups: {', '.join(in_groups)}")
    result = {}
    for group, members in groups.items():
        members = list(dict.fromkeys(members))
        unknown = [m for m in members if m not in students]
        if unknown:
            conflicts.append(f"{group}: {', '.join(unknown)} {'matches' if len(unknown) == 1 else 'match'} no student")
        submitters = [m for m in members if (root / "submitted" / m / assignment).is_dir()]
        if len(submitters) > 1:
            conflicts.append(f"{group}: {' and '.join(submitters)} each handed in (a member also submitted alone?)")
        if unknown or len(submitters) > 1 or any(m in twice for m in members):
            continue
        if not submitters:
            conflicts.append(f"{group}: no member handed in")
            continue
        result[group] = (submitters[0], [m for m in members if m != submitters[0]])
    return result, conflicts


def copy_result(gb, root: Path, assignment: str, source: str, member: str) -> None:
    """Give ``member`` ``source``'s graded notebooks and, in the gradebook, its scores and comments."""
    autograded = root / "autograded"
    if (autograded / member / assignment).exists():
        shutil.rmtree(autograded / member / assignment)
    if (autograded / source / assignment).exists():
        shutil.copytree(autograded / source / assignment, autograded / member / assignment)
    original = gb.find_submission(assignment, source)
    copy = gb.update_or_create_submission(assignment, member, timestamp=original.timestamp,
                                          extension=original.extension)
    by_name = {nb.name: nb for nb in copy.notebooks}
    for notebook in original.notebooks:
        target = by_name[notebook.name]
        target.flagged, target.late_submission_penalty = notebook.flagged, notebook.late_submission_penalty
        grades = {g.name: g for g in target.grades}
        for grade in notebook.grades:
            mine = grades[grade.name]
            mine.auto_score, mine.manual_score = grade.auto_score, grade.manual_score
            mine.extra_credit, mine.needs_manual_grade = grade.extra_credit, grade.needs_manual_grade
        comments = {c.name: c for c in target.comments}
        for comment in notebook.comments:
            comments[comment.name].auto_comment = comment.auto_comment
            comments[comment.name].manual_comment = comment.manual_comment
    gb.db.commit()


def apply(root: str | Path, assignment: str, groups_csv: str | Path | None = None) -> str:
    """Give every member of a group its submitter's result; write the record and the report; return the report."""
    from nbgrader.api import Gradebook

    root = Path(root)
    record = root / "grades" / f"{assignment}-groups.csv"
    before = []
    if record.exists():
        with open(record, newline="", encoding="utf-8") as f:
            before = [r["student_id"] for r in csv.DictReader(f) if r["result"] != "own submission"]
    with Gradebook(course.Layout(root).gradebook_url) as gb:
        students = gb.students
        groups = read_csv(groups_csv) if groups_csv else {}
        named, problems = from_uploads(root, assignment, students)
        for group, members in named.items():
            groups.setdefault(group, members)
        ids = {s.id for s in students}
        planned, conflicts = plan(root, assignment, groups, ids)
        graded = {s.student.id for s in gb.assignment_submissions(assignment)}
        rows, waiting = [], []
        for group, (source, members) in sorted(planned.items()):
            if source not in graded:
                waiting.append(f"{group}: {source}'s notebooks are not graded yet")
                continue
            for member in members:
                copy_result(gb, root, assignment, source, member)
            rows += [{"student_id": m, "group": group, "submitter": source,
                      "result": "own submission" if m == source else f"copy of {source}'s"} for m in [source, *members]]
        copied = {r["student_id"] for r in rows if r["result"] != "own submission"}
        removed = [m for m in before if m not in copied and not (root / "submitted" / m / assignment).is_dir()]
        for member in removed:  # a copy from an earlier run whose group has changed or now conflicts
            gb.remove_submission(assignment, member)
            shutil.rmtree(root / "autograded" / member / assignment, ignore_errors=True)
    out = root / "grades"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{assignment}-groups.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["student_id", "group", "submitter", "result"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Groups of '{assignment}'", "", f"## Graded once, result given to every member: {len(rows)} students",
             ""] + [f"- {r['student_id']} ({r['group']}): {r['result']}" for r in rows]
    lines += ["", f"## Conflicts (those groups left alone): {len(problems) + len(conflicts)}", ""]
    lines += [f"- {c}" for c in problems + conflicts]
    lines += ["", f"## Waiting: {len(waiting)}", ""] + [f"- {w}" for w in waiting]
    lines += ["", f"## Copies of an earlier run removed: {len(removed)}", ""] + [f"- {m}" for m in removed] + [""]
    text = "\n".join(lines)
    (course.Layout(root).reports(assignment) / "groups-report.md").write_text(text)
    return text

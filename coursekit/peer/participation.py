"""Who handed in and reviewed how many reports: ``python -m coursekit peer-participation``.

The rule is ``c.CourseKit.peer_rule`` in ``nbgrader_config.py``, e.g. ::

    c.CourseKit.peer_rule = {"assignments": ["lab1", "lab2", "lab3", "lab4", "lab5", "lab6"], "required": 5}

An assignment counts for a student who handed it in (``submitted/<student>/<assignment>/``) **and** whose reviews
are all stored (or at least ``"reviews": n`` of them, when the rule says so).  A student passes with ``required``
counting assignments.  Defaults: the assignments with a peer review drawn, all of them required.  Assignments not
drawn yet count for nobody so far; "can still pass" says whether the rest could still make it.

Written: ``reports/peer-participation.csv`` and ``reports/peer-participation.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import course
from ..pages import render
from . import store


@dataclass
class Rule:
    assignments: list[str]
    required: int
    reviews: int | None = None  # reviews needed per assignment (None: all assigned)

    def __str__(self) -> str:
        reviews = f"at least {self.reviews} reviews" if self.reviews else "all reviews assigned"
        return (f"{self.required} of {len(self.assignments)} ({', '.join(self.assignments)}) handed in and "
                f"reviewed ({reviews})")


def rule(root: str | Path) -> Rule:
    """``c.CourseKit.peer_rule`` with its defaults."""
    root = Path(root)
    configured = dict(course.setting(root, "peer_rule", {}) or {})
    drawn = sorted(p.parent.name for p in (root / store.FOLDER).glob("*/draw.json"))
    assignments = list(configured.get("assignments") or drawn)
    required = int(configured.get("required", len(assignments)))
    if not 0 < required <= len(assignments):
        raise ValueError(f"c.CourseKit.peer_rule: 'required' is {required}, but there are {len(assignments)} "
                         "peer-reviewed assignments")
    return Rule(assignments, required, configured.get("reviews"))


def participation(root: str | Path, the_rule: Rule | None = None) -> tuple[Rule, list[dict]]:
    """``(rule, rows)``: per student and assignment handed in, reviews stored and assigned, whether it counts."""
    root = Path(root)
    the_rule = the_rule or rule(root)
    draws = {a: store.load(root, a) for a in the_rule.assignments if (store.folder(root, a) / "draw.json").exists()}
    handed_in = {a: set(store.submitters(root, a)) for a in the_rule.assignments}
    done = {a: {} for a in draws}
    for a in draws:
        for review in store.reviews(root, a):
            done[a][review.reviewer] = done[a].get(review.reviewer, 0) + 1
    students = set(store.people(root)).union(*handed_in.values(), *(d.reviews for d in draws.values()))
    rows = []
    for student in sorted(students):
        row = {"student_id": student, "assignments": {}}
        for a in the_rule.assignments:
            assigned = len(draws[a].reviews.get(student, {})) if a in draws else 0
            reviews = done.get(a, {}).get(student, 0)
            needed = min(the_rule.reviews, assigned) if the_rule.reviews else assigned
            counts = a in draws and student in handed_in[a] and assigned > 0 and reviews >= needed
            row["assignments"][a] = {"handed_in": student in handed_in[a], "reviews": reviews, "assigned": assigned,
                                     "counts": counts}
        row["counted"] = sum(x["counts"] for x in row["assignments"].values())
        row["passes"] = row["counted"] >= the_rule.required
        row["can_still_pass"] = row["counted"] + len([a for a in the_rule.assignments if a not in draws]) \
            >= the_rule.required
        rows.append(row)
    return the_rule, rows


def write(root: str | Path) -> tuple[Path, Path]:
    root = Path(root)
    the_rule, rows = participation(root)
    folder = root / "reports"
    columns = ["student_id"]
    for a in the_rule.assignments:
        columns += [f"{a} handed in", f"{a} reviews", f"{a} counts"]
    columns += ["counted", "required", "passes", "can still pass"]
    table = []
    for row in rows:
        line = {"student_id": row["student_id"], "counted": row["counted"], "required": the_rule.required,
                "passes": "yes" if row["passes"] else "no", "can still pass": "yes" if row["can_still_pass"] else "no"}
        for a, x in row["assignments"].items():
            line.update({f"{a} handed in": "yes" if x["handed_in"] else "no",
                         f"{a} reviews": f"{x['reviews']}/{x['assigned']}", f"{a} counts": "yes" if x["counts"] else "no"})
        table.append(line)
    csv_path = store.write_csv(folder / "peer-participation.csv", columns, table)
    html_path = folder / "peer-participation.html"
    html_path.write_text(render("peer-participation.html.j2", rule=the_rule, rows=rows), encoding="utf-8")
    return csv_path, html_path

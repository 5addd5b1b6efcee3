"""The course sheet: per student the points of every assignment that counts, who passed which part of the course
and why, and the points transferred from one part to another.

``python -m coursekit course-sheet`` writes ``grades/course-sheet.csv`` and ``reports/course-sheet.html`` from the
gradebook, with the rules of ``c.CourseKit.course_rules`` (``nbgrader_config.py``)::

    c.CourseKit.course_rules = {
        "practicals": {"assignments": ["lab"], "pass_at": 80,
                       "transfer": {"to": "exam", "above": 80, "at_most": 40}},
        "exam": {"assignments": ["exam"]},
    }

A part (``"practicals"``) adds up the points of its assignments, the same numbers as ``grades/<assignment>-tasks.csv``
(automatic and manual, a student without a submission has 0).  It is passed with at least ``pass_at`` points
*without* the bonus tasks (``"bonus_counts": True`` lets the bonus count too).  ``transfer``: of a passed part, the
points above ``above``, bonus included, go to the part ``to``, at most ``at_most``; they count there as bonus.
A student with text answers not graded yet in a part gets "open" for it (and no transfer), never passed or failed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from . import course
from .export import task_rows

RULE_KEYS = {"assignments", "pass_at", "bonus_counts", "transfer"}
TRANSFER_KEYS = {"to", "above", "at_most"}


def _number(x: float) -> str:
    return f"{x:g}"


def rules(root: str | Path) -> dict[str, dict]:
    """``c.CourseKit.course_rules``, checked: every key known, every assignment configured, every transfer target a
    part."""
    configured = course.setting(root, "course_rules", None)
    if not configured:
        raise ValueError("no c.CourseKit.course_rules in nbgrader_config.py: which assignments count, pass thresholds")
    known = course.assignments(root)
    checked = {}
    for part, rule in configured.items():
        rule = dict(rule)
        unknown = set(rule) - RULE_KEYS
        if unknown:
            raise ValueError(f"course_rules[{part!r}]: unknown keys {sorted(unknown)} (known: {sorted(RULE_KEYS)})")
        missing = [a for a in rule.get("assignments", []) if a not in known]
        if not rule.get("assignments") or missing:
            raise ValueError(f"course_rules[{part!r}]: assignments {missing or '[]'} are not in "
                             "c.CourseKit.assignments")
        transfer = rule.get("transfer")
        if transfer is not None:
            transfer = dict(transfer)
            if set(transfer) != TRANSFER_KEYS or transfer["to"] not in configured or transfer["to"] == part:
                raise ValueError(f"course_rules[{part!r}]['transfer'] needs exactly {sorted(TRANSFER_KEYS)}, "
                                 f"'to' another part of course_rules")
            if "pass_at" not in rule:
                raise ValueError(f"course_rules[{part!r}]: a transfer needs a pass_at (only a passed part transfers)")
        checked[part] = {**rule, "transfer": transfer}
    return checked


@dataclass
class PartResult:
    points: float = 0.0  # without bonus tasks
    bonus: float = 0.0  # bonus tasks and points transferred in
    transferred_in: float = 0.0
    open: list[str] = field(default_factory=list)  # "lab (2 text answers)"
    missing: list[str] = field(default_factory=list)  # assignments not submitted
    result: str = ""  # passed, not passed, open, or "" (no threshold)
    reason: str = ""
    transferred_out: float | None = None


def judge(rule: dict, part: PartResult) -> None:
    """Set ``result`` and ``reason`` of ``part`` by ``rule`` (its points and bonus already added up)."""
    if part.open:
        part.result, part.reason = "open", "text answers not graded yet: " + ", ".join(part.open)
        return
    if "pass_at" not in rule:
        return
    counts = part.points + (part.bonus if rule.get("bonus_counts") else 0)
    need = rule["pass_at"]
    how = "with bonus" if rule.get("bonus_counts") else (
        f"bonus {_number(part.bonus)} not counted" if part.bonus else "without bonus")
    part.result = "passed" if counts >= need else "not passed"
    part.reason = f"{_number(counts)} points ({how}), {_number(need)} needed"
    if part.missing:
        part.reason += "; not submitted: " + ", ".join(part.missing)


def sheet(root: str | Path, gradebook=None) -> tuple[list[str], list[dict]]:
    """``(columns, rows)`` of the course sheet: one row per student of the gradebook."""
    from contextlib import nullcontext

    from nbgrader.api import Gradebook

    root = Path(root)
    parts = rules(root)
    assignments = list(dict.fromkeys(a for rule in parts.values() for a in rule["assignments"]))
    with nullcontext(gradebook) if gradebook is not None else Gradebook(course.Layout(root).gradebook_url) as gb:
        known = {a.name for a in gb.assignments}
        per_assignment = {a: {r["student_id"]: r for r in task_rows(root, a, gb)[1]} if a in known else {}
                          for a in assignments}
        students = sorted(gb.students, key=lambda s: s.id)
        people = [(s.id, s.last_name or "", s.first_name or "") for s in students]
    columns = ["student_id", "last_name", "first_name"]
    for a in assignments:
        columns += [a, f"{a} bonus"]
    for name, rule in parts.items():
        columns += [f"{name}: points", f"{name}: bonus", f"{name}: result", f"{name}: reason"]
        if rule["transfer"]:
            columns.append(f"{name}: to {rule['transfer']['to']}")
    receiving = {rule["transfer"]["to"] for rule in parts.values() if rule["transfer"]}
    rows = []
    for student, last, first in people:
        row = {"student_id": student, "last_name": last, "first_name": first}
        results = {name: PartResult() for name in parts}
        for name, rule in parts.items():
            part = results[name]
            for a in rule["assignments"]:
                r = per_assignment[a].get(student)
                if r is None or r["submitted"] != "yes":
                    row[a], row[f"{a} bonus"] = "", ""
                    part.missing.append(a)
                    continue
                bonus, total = float(r["bonus"]), float(r["total"])
                row[a], row[f"{a} bonus"] = _number(total - bonus), _number(bonus)
                part.points += total - bonus
                part.bonus += bonus
                if r["manual_open"] != "0":
                    part.open.append(f"{a} ({r['manual_open']})")
        for name in [n for n in parts if n not in receiving] + [n for n in parts if n in receiving]:
            rule, part = parts[name], results[name]
            judge(rule, part)
            transfer = rule["transfer"]
            if transfer:
                if part.result == "open":
                    part.transferred_out = None
                else:
                    above = part.points + part.bonus - transfer["above"]
                    part.transferred_out = min(transfer["at_most"], max(0.0, above)) if part.result == "passed" else 0.0
                    results[transfer["to"]].bonus += part.transferred_out
                    results[transfer["to"]].transferred_in += part.transferred_out
        for name, rule in parts.items():
            part = results[name]
            row.update({f"{name}: points": _number(part.points), f"{name}: bonus": _number(part.bonus),
                        f"{name}: result": part.result, f"{name}: reason": part.reason})
            if part.transferred_in:
                row[f"{name}: reason"] = (part.reason + "; " if part.reason else "") + \
                    f"{_number(part.transferred_in)} transferred in (in bonus)"
            if rule["transfer"]:
                row[f"{name}: to {rule['transfer']['to']}"] = "" if part.transferred_out is None \
                    else _number(part.transferred_out)
        rows.append(row)
    return columns, rows


def describe(parts: dict[str, dict]) -> list[str]:
    """The rules in words, for the page."""
    lines = []
    for name, rule in parts.items():
        text = f"{name}: {', '.join(rule['assignments'])}"
        if "pass_at" in rule:
            text += f"; passed with at least {_number(rule['pass_at'])} points " + (
                "(bonus included)" if rule.get("bonus_counts") else "(bonus not counted)")
        t = rule["transfer"]
        if t:
            text += (f"; up to {_number(t['at_most'])} points above {_number(t['above'])} (bonus included) "
                     f"are transferred to {t['to']} as bonus")
        lines.append(text)
    return lines


def write(root: str | Path) -> list[Path]:
    """Write ``grades/course-sheet.csv`` and ``reports/course-sheet.html``; return their paths."""
    from .pages import render

    root = Path(root)
    columns, rows = sheet(root)
    csv_path, html_path = root / "grades" / "course-sheet.csv", root / "reports" / "course-sheet.html"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    html_path.write_text(render("course-sheet.html.j2", rules=describe(rules(root)), columns=columns, rows=rows))
    return [csv_path, html_path]

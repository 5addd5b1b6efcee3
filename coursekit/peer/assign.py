"""Who reviews whose report: ``python -m coursekit peer-assign <assignment> [--k 4] [--seed N] [--groups groups.csv]
[--ids ids.csv] [--late]``.

A report is a submission (``submitted/<student>/<assignment>/``).  Reviewers are the students who submitted and
every other student the course knows (the gradebook's students, the groups file): **a student who handed in nothing
reviews k reports too, but is not reviewed**.

Round 1 draws, reproducibly from the seed (a random one, recorded in ``draw.json``, when none is given):

* the submitters sit in a circle, each group's members next to each other (groups and members in a random order);
  with G the largest group, the student at place i reviews the reports at places i+G, ..., i+G+k-1.  So every
  submitter reviews exactly k reports and every report gets exactly k reviews from submitters, never one's own or
  one's group's (all of a group sit within G-1 places of each other).  It needs at least 2G+k-1 reports;
* each student without a submission then takes the k reports with the fewest reviews so far (ties at random,
  never a group-mate's): every report gets k reviews, or k+1 when there are more reviewers than reports.

**Late submissions** come in a second round, ``--late``, after they have been imported: each late report gets k
reviewers, those with the fewest reviews to do first, and a late submitter who does not review yet takes k reports
with the fewest reviews.  Earlier assignments stay as they are; only the packets that changed are written again.
"""

from __future__ import annotations

import csv
import random
import re
import secrets
import shutil
import string
from pathlib import Path

from .. import intake
from . import packets, store
from .anonymize import Scrubber

CODE_LETTERS = "".join(c for c in string.ascii_uppercase + string.digits if c not in "01IO")


def read_groups(path: str | Path | None) -> dict[str, str]:
    """``{student: group}`` from a CSV whose first column is the group id and whose other columns hold its members
    (several in one cell separated by spaces, commas or semicolons); a header row (``group,members``) is skipped."""
    if not path:
        return {}
    groups = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, row in enumerate(csv.reader(f)):
            if not row or not row[0].strip() or (number == 0 and row[0].strip().lower() in ("group", "group id",
                                                                                             "group_id", "id")):
                continue
            for cell in row[1:]:
                for member in re.split(r"[\s,;]+", cell.strip()):
                    if member:
                        if groups.get(member, row[0].strip()) != row[0].strip():
                            raise ValueError(f"{path}: {member} is in two groups ({groups[member]}, {row[0].strip()})")
                        groups[member] = row[0].strip()
    return groups


def first_round(authors: list[str], others: list[str], k: int, groups: dict[str, str],
                rng: random.Random) -> dict[str, list[str]]:
    """``{reviewer: [author, ...]}``: the circle for the ``authors``, then k reports for each of ``others``."""
    group_of = lambda s: groups.get(s, s)  # noqa: E731 - a student without a group is a group of one
    blocks: dict[str, list[str]] = {}
    for author in sorted(authors):
        blocks.setdefault(group_of(author), []).append(author)
    order = sorted(blocks.values())
    rng.shuffle(order)
    for block in order:
        rng.shuffle(block)
    circle = [a for block in order for a in block]
    n, g = len(circle), max((len(b) for b in order), default=1)
    if k < 1:
        raise ValueError("every reviewer needs at least one report (--k 1 or more)")
    if n < 2 * g + k - 1:
        group_note = f" in groups of up to {g}" if g > 1 else ""
        raise ValueError(f"{n} reports are too few for {k} reviews each{group_note}: that needs at least "
                         f"{2 * g + k - 1}" + (f" (use --k {n - 2 * g + 1})" if n - 2 * g + 1 >= 1 else ""))
    plan = {circle[i]: [circle[(i + g + t) % n] for t in range(k)] for i in range(n)}
    received = {a: k for a in circle}
    for reviewer in shuffled(others, rng):
        plan[reviewer] = pick(k, [a for a in circle if group_of(a) != group_of(reviewer)], received, rng, reviewer)
    return plan


def shuffled(items, rng: random.Random) -> list:
    items = sorted(items)
    rng.shuffle(items)
    return items


def pick(k: int, allowed: list[str], received: dict[str, int], rng: random.Random, reviewer: str) -> list[str]:
    """The k of the ``allowed`` reports with the fewest reviews so far (ties at random); counted in ``received``."""
    if len(allowed) < k:
        raise ValueError(f"{reviewer} may review only {len(allowed)} reports, fewer than {k}")
    tie = {a: rng.random() for a in allowed}
    chosen = sorted(allowed, key=lambda a: (received[a], tie[a]))[:k]
    for a in chosen:
        received[a] += 1
    return chosen


def new_code(rng: random.Random, used, prefix: str, length: int = 4) -> str:
    while True:
        code = prefix + "".join(rng.choice(CODE_LETTERS) for _ in range(length))
        if code not in used:
            return code


def late_round(draw: store.Draw, new_authors: list[str], new_reviewers: list[str], rng: random.Random) -> set[str]:
    """Add the reports of ``new_authors`` (k reviewers each, the least busy first) and give each of
    ``new_reviewers`` k reports (the least reviewed first); return the reviewers whose packets changed."""
    round_number = max(draw.rounds.values(), default=1) + 1
    group_of = lambda s: draw.groups.get(s, s)  # noqa: E731
    for author in shuffled(new_authors, rng):
        code = new_code(rng, draw.authors, "R-")
        draw.authors[code], draw.rounds[code] = author, round_number
    received = {code: len(draw.reviewers_of(code)) for code in draw.authors}
    changed = set()
    for reviewer in shuffled(new_reviewers, rng):
        allowed = sorted(c for c in received if group_of(draw.authors[c]) != group_of(reviewer))
        draw.reviews[reviewer] = {c: round_number for c in pick(draw.k, allowed, received, rng, reviewer)}
        draw.tokens[reviewer] = new_code(rng, set(draw.tokens.values()), "V-", 6)
        changed.add(reviewer)
    for code in [c for c, r in draw.rounds.items() if r == round_number]:
        load = {r: len(codes) for r, codes in draw.reviews.items()}
        allowed = sorted(r for r in load if code not in draw.reviews[r] and group_of(r) != group_of(draw.authors[code]))
        need = draw.k - received[code]
        if len(allowed) < need:
            raise ValueError(f"report {code} needs {need} more reviewers, but only {len(allowed)} may review it")
        tie = {r: rng.random() for r in allowed}
        for reviewer in sorted(allowed, key=lambda r: (load[r], tie[r]))[:max(need, 0)]:
            draw.reviews[reviewer][code] = round_number
            received[code] += 1
            changed.add(reviewer)
    return changed


def write_tables(root: Path, draw: store.Draw) -> None:
    """``pairs.csv`` (for the instructor: who reviews whose report) and ``assignment.csv`` (for the learning
    platform: per reviewer the report codes and the packet, no authors)."""
    base = store.folder(root, draw.assignment)
    store.write_csv(base / "pairs.csv", ["reviewer", "report", "author", "round"],
                    [{"reviewer": r, "report": c, "author": draw.authors[c], "round": n}
                     for r in sorted(draw.reviews) for c, n in sorted(draw.reviews[r].items())])
    names = store.people(root)
    store.write_csv(base / "assignment.csv",
                    ["reviewer", "last_name", "first_name", "email", "handed_in", "reports", "packet"],
                    [{"reviewer": r, **names.get(r, {}), "handed_in": "yes" if r in draw.code_of else "no",
                      "reports": " ".join(sorted(codes)), "packet": f"packets/{r}.html"}
                     for r, codes in sorted(draw.reviews.items())])


def scrubber(root: Path, groups: dict[str, str], ids: str | Path | None = None) -> Scrubber:
    """What is removed from the reports: every student of the gradebook, the submitters, the groups' members and
    every id, user name, e-mail address and name in the id file of ``import-lms`` (``ids``)."""
    students = store.people(root)
    for student in [*Path(root, "submitted").glob("*/"), *groups]:
        students.setdefault(Path(student).name, {})
    id_file = intake.read_id_map(ids)
    return Scrubber(students, {*id_file, *id_file.values()})


def assign(root: str | Path, assignment: str, k: int = 4, seed: int | None = None, groups: str | Path | None = None,
           ids: str | Path | None = None, late: bool = False, force: bool = False) -> store.Draw:
    """Draw (or with ``late`` extend) the peer review of ``assignment`` and write its tables and packets."""
    root = Path(root).resolve()
    path = store.folder(root, assignment) / "draw.json"
    authors = store.submitters(root, assignment)
    if not authors:
        raise ValueError(f"no submissions of '{assignment}' in {root / 'submitted'}")
    if path.exists() and not (late or force):
        raise ValueError(f"the peer review of '{assignment}' is drawn already ({path}): --late adds the submissions "
                         "that came since, --force draws again (packets handed out become invalid)")
    if force and not late and (store.folder(root, assignment) / "reviews.csv").exists():
        raise ValueError(f"reviews of this draw of '{assignment}' are collected already "
                         f"({store.folder(root, assignment) / 'reviews.csv'}): a new draw would orphan them; move that "
                         "file away first if you really want to draw again")
    if late:
        draw = store.load(root, assignment)
        draw.groups.update(read_groups(groups))
        rng = random.Random(f"{draw.seed}/round{max(draw.rounds.values()) + 1}")
        known = set(store.people(root)) | set(draw.groups) | set(authors)
        new_authors = [a for a in authors if a not in draw.code_of]
        new_reviewers = sorted(known - set(draw.reviews))
        if not new_authors and not new_reviewers:
            raise ValueError(f"no late submissions of '{assignment}' and no new students: nothing to add")
        changed = late_round(draw, new_authors, new_reviewers, rng)
        codes = [draw.code_of[a] for a in new_authors]
    else:
        seed = secrets.randbelow(1_000_000) if seed is None else seed
        rng = random.Random(seed)
        group_map = read_groups(groups)
        criteria = store.rubric(root, assignment)
        if not criteria:
            raise ValueError(f"'{assignment}' has no graded tasks in source/ to review")
        others = sorted((set(store.people(root)) | set(group_map)) - set(authors))
        plan = first_round(authors, others, k, group_map, rng)
        draw = store.Draw(assignment, seed, k, criteria, groups=group_map)
        for author in shuffled(authors, rng):
            code = new_code(rng, draw.authors, "R-")
            draw.authors[code], draw.rounds[code] = author, 1
        for reviewer in sorted(plan):
            draw.reviews[reviewer] = {draw.code_of[a]: 1 for a in plan[reviewer]}
            draw.tokens[reviewer] = new_code(rng, set(draw.tokens.values()), "V-", 6)
        changed, codes = set(draw.reviews), list(draw.authors)
        for stale in ("packets", "reports"):  # of an earlier draw (--force)
            shutil.rmtree(store.folder(root, assignment) / stale, ignore_errors=True)
    draw.ids = str(Path(ids).resolve()) if ids else draw.ids  # --late without --ids: the first round's file
    draw.save(path)
    write_tables(root, draw)
    packets.write(root, draw, scrubber(root, draw.groups, draw.ids or None), codes, changed)
    return draw

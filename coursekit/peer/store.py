"""Where peer review keeps its data, and what it reads from the course.

``peer/<assignment>/`` (git-ignored, like ``submitted/``: it maps the anonymous codes to the authors):

* ``draw.json``: the draw: the rubric, each report's code, author and round, who reviews which report, the
  groups, each reviewer's form token, the seed;
* ``pairs.csv``: the draw as a table for the instructor (reviewer, report, author, round);
* ``assignment.csv``: per reviewer the reports to review and the packet to hand out (no authors): for the
  learning platform;
* ``reports/<code>.html``: each report, anonymized; ``packets/<reviewer>/`` (the reports and the review form)
  and ``packets/<reviewer>.zip``;
* ``reviews.csv``: every accepted review, one row per criterion (and one for the overall comment);
* ``feedback/<student>.html``: what each student gets back (reviews of their report, how their own reviews
  compared).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import course

FOLDER = "peer"
OVERALL = "(overall)"  # the criterion of a review's overall comment in reviews.csv
REVIEW_COLUMNS = ["reviewer", "report", "author", "criterion", "score", "comment", "saved", "file"]


@dataclass
class Criterion:
    """One line of the review form: a graded task of the assignment and its points."""

    task: str  # "2(c)", the label of grades/<assignment>-tasks.csv
    notebook: str
    title: str  # "Loss, optimizer and training loop"
    points: float
    bonus: bool = False


def rubric(root: str | Path, assignment: str) -> list[Criterion]:
    """The criteria of ``assignment``: its graded tasks in notebook order, with the points of all their cells, read
    from the source notebooks (the task headings, as :func:`coursekit.course.task_labels` reads them)."""
    criteria: dict[str, Criterion] = {}
    for notebook, source in course.source_notebooks(root, assignment).items():
        bonus = course.bonus_tasks(source)
        titles = {}
        for task, cell in course.cells_with_tasks(source):
            if task is None:
                continue
            if cell.cell_type == "markdown" and task not in titles:
                heading = course.TASK_HEADING.search(cell.source)
                if heading:
                    line = cell.source[heading.end():].splitlines()[0]
                    title = re.sub(r"\s*\(\s*[\d.]+\s+points?\s*\)\s*$", "", line).lstrip(" :").strip()
                    titles[task] = re.sub(r"^bonus\b[:\s-]*", "", title, flags=re.I)  # the flag says it
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") or meta.get("task"):
                if task not in criteria:
                    criteria[task] = Criterion(task, notebook, titles.get(task, ""), 0.0, task in bonus)
                criteria[task].points += float(meta.get("points") or 0)
    return [c for c in criteria.values() if c.points > 0]


@dataclass
class Draw:
    """Who reviews whose report (``draw.json``)."""

    assignment: str
    seed: int
    k: int
    criteria: list[Criterion]
    authors: dict[str, str] = field(default_factory=dict)  # report code -> author
    rounds: dict[str, int] = field(default_factory=dict)  # report code -> round it was drawn in (2: late)
    reviews: dict[str, dict[str, int]] = field(default_factory=dict)  # reviewer -> {report code: round}
    groups: dict[str, str] = field(default_factory=dict)  # student -> group id
    tokens: dict[str, str] = field(default_factory=dict)  # reviewer -> the token in their form
    ids: str = ""  # the id file of import-lms whose names and ids the reports are scrubbed of

    @property
    def code_of(self) -> dict[str, str]:
        return {author: code for code, author in self.authors.items()}

    def reviewers_of(self, code: str) -> list[str]:
        return sorted(r for r, codes in self.reviews.items() if code in codes)

    def criterion(self, task: str) -> Criterion | None:
        return next((c for c in self.criteria if c.task == task), None)

    @property
    def max_total(self) -> float:
        return sum(c.points for c in self.criteria if not c.bonus)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Draw":
        data = json.loads(path.read_text())
        data["criteria"] = [Criterion(**c) for c in data["criteria"]]
        return cls(**data)


def folder(root: str | Path, assignment: str) -> Path:
    return Path(root) / FOLDER / assignment


def load(root: str | Path, assignment: str) -> Draw:
    path = folder(root, assignment) / "draw.json"
    if not path.exists():
        raise ValueError(f"no peer review drawn for '{assignment}' yet: run `python -m coursekit peer-assign "
                         f"{assignment}` first")
    return Draw.load(path)


def submitters(root: str | Path, assignment: str) -> list[str]:
    """The students with a notebook in ``submitted/<student>/<assignment>/``."""
    base = Path(root) / "submitted"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and any((p / assignment).glob("*.ipynb"))) \
        if base.is_dir() else []


def people(root: str | Path) -> dict[str, dict[str, str]]:
    """``{student id: {"first_name", "last_name", "email"}}`` of the gradebook's students (empty without one)."""
    from nbgrader.api import Gradebook

    layout = course.Layout(root)
    url = layout.gradebook_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return {}
    with Gradebook(url) as gb:
        return {s.id: {"first_name": s.first_name or "", "last_name": s.last_name or "", "email": s.email or ""}
                for s in gb.students}


def read_reviews(root: str | Path, assignment: str) -> list[dict]:
    path = folder(root, assignment) / "reviews.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class Review:
    """One reviewer's review of one report."""

    reviewer: str
    report: str
    author: str
    scores: dict[str, float]  # task -> points
    comments: dict[str, str]  # task (or OVERALL) -> comment
    saved: str = ""
    file: str = ""


def reviews(root: str | Path, assignment: str) -> list[Review]:
    """The accepted reviews of ``assignment`` (``reviews.csv``)."""
    found: dict[tuple[str, str], Review] = {}
    for row in read_reviews(root, assignment):
        review = found.setdefault((row["reviewer"], row["report"]), Review(
            row["reviewer"], row["report"], row["author"], {}, {}, row["saved"], row["file"]))
        if row["criterion"] != OVERALL and row["score"] != "":
            review.scores[row["criterion"]] = float(row["score"])
        if row["comment"]:
            review.comments[row["criterion"]] = row["comment"]
    return list(found.values())


def write_reviews(root: str | Path, assignment: str, accepted: list[Review]) -> Path:
    rows = []
    for r in sorted(accepted, key=lambda r: (r.reviewer, r.report)):
        base = {"reviewer": r.reviewer, "report": r.report, "author": r.author, "saved": r.saved, "file": r.file}
        for task, score in r.scores.items():
            rows.append({**base, "criterion": task, "score": f"{score:g}", "comment": r.comments.get(task, "")})
        if r.comments.get(OVERALL):
            rows.append({**base, "criterion": OVERALL, "score": "", "comment": r.comments[OVERALL]})
    return write_csv(folder(root, assignment) / "reviews.csv", REVIEW_COLUMNS, rows)

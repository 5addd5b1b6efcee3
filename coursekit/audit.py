"""How strong are the hidden tests?  Mutation testing of the solutions: ``python -m coursekit audit``.

A *mutant* is the solution with one small change in one answer cell, of the kind students make: a deleted
statement, a swapped operator, comparison or activation, a changed constant, a dropped argument.  Each
mutant is uploaded as a submission of its own and graded by the real pipeline (``nbgrader autograde`` in
the sandbox, offline fixtures), exactly as a student would be.  A mutant is *caught* when its notebook
scores below full points; the report says, per task and notebook, how many were caught, and lists every
survivor with the line it changed, so an instructor sees weak tests before the exam.  Some survivors are
harmless (a changed learning rate, a deleted ``model.eval()`` in a network without dropout): the
instructor judges, the report only shows them.

Only code inside the solution regions (``### BEGIN SOLUTION`` ... ``### END SOLUTION``) is changed, never the
code the release gives, and ``print`` calls and strings are left alone.  Mutants are drawn reproducibly
(``seed``), at most ``limit`` per notebook, spread over the operators.
"""

from __future__ import annotations

import ast
import copy
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course, offline, submissions
from .autograde import autograde
from .pages import render

RENAMES = {  # functions and layers that students swap for one another
    "relu": "sigmoid", "ReLU": "Tanh", "tanh": "relu", "Tanh": "ReLU", "sigmoid": "tanh", "Sigmoid": "ReLU",
    "max_pool2d": "avg_pool2d", "MaxPool2d": "AvgPool2d", "mean": "sum", "sum": "mean", "argmax": "argmin",
    "max": "min", "min": "max", "CrossEntropyLoss": "NLLLoss", "BCEWithLogitsLoss": "MSELoss", "Adam": "SGD",
    "eval": "train", "train": "eval", "sin": "cos", "cos": "sin", "exp": "log", "softmax": "log_softmax",
    "Dropout": "Identity", "BatchNorm2d": "InstanceNorm2d", "detach": "clone", "flatten": "squeeze",
}
BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Pow: ast.Mult}
COMPARE = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq}
OPERATORS = ("delete statement", "swap operator", "swap comparison", "change constant", "swap name",
             "drop argument", "drop negation")


@dataclass
class Mutant:
    id: str
    notebook: str
    cell: str          # the answer cell's grade_id
    task: str          # "2(c)"
    operator: str
    line: int          # in the answer cell as the student sees it (solution markers removed)
    before: str
    after: str
    answer: str = field(repr=False, default="")  # the whole mutated answer cell


@dataclass
class Outcome:
    mutant: Mutant
    own: float          # points lost in the tests of the mutant's own task
    elsewhere: float    # points lost in the notebook's other tests

    @property
    def caught(self) -> bool:
        return self.own > 0 or self.elsewhere > 0


@dataclass
class Audit:
    assignment: str
    outcomes: list[Outcome]
    made: dict[str, int]          # notebook: mutants that could be made (before the limit)
    seconds: float = 0.0
    baseline: list[str] = field(default_factory=list)  # problems with the solution itself

    def by(self, key) -> dict[str, list[Outcome]]:
        groups: dict[str, list[Outcome]] = {}
        for outcome in self.outcomes:
            groups.setdefault(key(outcome.mutant), []).append(outcome)
        return groups

    @staticmethod
    def rate(outcomes: list[Outcome]) -> float:
        return sum(o.caught for o in outcomes) / len(outcomes) if outcomes else float("nan")

    def summary(self) -> str:
        lines = [f"Audit of '{self.assignment}': {len(self.outcomes)} mutants of the solutions graded in "
                 f"{self.seconds:.0f} s"]
        lines += [f"  PROBLEM: {p}" for p in self.baseline]
        for notebook, outcomes in self.by(lambda m: m.notebook).items():
            lines.append(f"{notebook}: {sum(o.caught for o in outcomes)} of {len(outcomes)} caught "
                         f"({self.rate(outcomes):.0%}; {self.made.get(notebook, len(outcomes))} could be made)")
            for task, mine in self.by(lambda m: f"{m.notebook} {m.task}").items():
                if task.startswith(notebook + " "):
                    lines.append(f"  {task.split(' ', 1)[1]:6} {sum(o.caught for o in mine):3d} of {len(mine):3d} caught"
                                 + (f", {sum(o.own == 0 and o.elsewhere > 0 for o in mine)} only by another task's tests"
                                    if any(o.own == 0 and o.elsewhere > 0 for o in mine) else ""))
            for outcome in outcomes:
                if not outcome.caught:
                    m = outcome.mutant
                    lines.append(f"    survived: {m.task} {m.operator}, line {m.line}: {m.before.strip()}  ->  "
                                 f"{m.after.strip() or '(deleted)'}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- making mutants
def _solution_lines(source: str) -> set[int]:
    """1-based line numbers of the source cell that lie inside solution regions."""
    inside, lines = False, set()
    for number, line in enumerate(source.split("\n"), start=1):
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _is_print(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
        isinstance(node.value.func, ast.Name) and node.value.func.id == "print"


def _inside_print_or_string(tree) -> set[int]:
    """ids of the nodes that lie inside print calls, f-strings and docstrings (left alone)."""
    skip = set()
    for node in ast.walk(tree):
        if _is_print(node) or isinstance(node, ast.JoinedStr):
            skip |= {id(n) for n in ast.walk(node)}
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(getattr(node.body[0], "value", None), ast.Constant):
            skip |= {id(n) for n in ast.walk(node.body[0])}
    return skip


def _changes(tree, allowed: set[int]):
    """``(operator, node, replacement)`` for every mutation of a node on an allowed line."""
    skip = _inside_print_or_string(tree)

    def ok(node) -> bool:
        end = getattr(node, "end_lineno", getattr(node, "lineno", 0))
        return id(node) not in skip and all(n in allowed for n in range(getattr(node, "lineno", 0), end + 1))

    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ok(node) \
                and not _is_print(node) and not isinstance(node, ast.Pass):
            yield "delete statement", node, ast.Pass()
        if not ok(node):
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            yield "swap operator", node, ast.BinOp(node.left, BINARY[type(node.op)](), node.right)
        elif isinstance(node, ast.AugAssign) and type(node.op) in BINARY:
            yield "swap operator", node, ast.AugAssign(node.target, BINARY[type(node.op)](), node.value)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE:
            yield "swap comparison", node, ast.Compare(node.left, [COMPARE[type(node.ops[0])]()], node.comparators)
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            value = node.value
            changed = value + 1 if isinstance(value, int) else (value * 2 if value else 1.0)
            yield "change constant", node, ast.Constant(changed)
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            yield "change constant", node, ast.Constant(not node.value)
        elif isinstance(node, ast.Attribute) and node.attr in RENAMES:
            yield "swap name", node, ast.Attribute(node.value, RENAMES[node.attr], node.ctx)
        elif isinstance(node, ast.Name) and node.id in RENAMES and isinstance(node.ctx, ast.Load):
            yield "swap name", node, ast.Name(RENAMES[node.id], node.ctx)
        elif isinstance(node, ast.Call) and (node.args or node.keywords):
            if node.keywords:
                for k in range(len(node.keywords)):
                    yield "drop argument", node, ast.Call(node.func, node.args, node.keywords[:k] + node.keywords[k + 1:])
            elif len(node.args) > 1:
                yield "drop argument", node, ast.Call(node.func, node.args[:-1], node.keywords)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            yield "drop negation", node, node.operand


def _replace(source: str, node, replacement) -> str:
    """``source`` with ``node``'s text replaced by the unparsed replacement (the rest kept verbatim)."""
    lines = source.split("\n")
    start, end = node.lineno - 1, node.end_lineno - 1
    new = ast.unparse(replacement)
    prefix, suffix = lines[start][:node.col_offset], lines[end][node.end_col_offset:]
    return "\n".join(lines[:start] + [prefix + new + suffix] + lines[end + 1:])


def _answer(cell_source: str) -> str:
    """The answer as a student writes it: the solution markers removed (as ``submissions.solution_answers``)."""
    return "\n".join(line for line in cell_source.split("\n")
                     if not any(m in line for m in submissions.MARKERS)).strip("\n")


def mutants(source_nb, notebook: str) -> list[Mutant]:
    """Every mutant of the answer cells of a source notebook."""
    made = []
    for task, cell in course.cells_with_tasks(source_nb):
        if cell.cell_type != "code" or not submissions.is_answer(cell):
            continue
        grade_id = submissions.grade_id(cell)
        allowed = _solution_lines(cell.source)
        tree = ast.parse(cell.source)
        for operator, node, replacement in _changes(tree, allowed):
            mutated = _replace(cell.source, node, replacement)
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
            answer = _answer(mutated)
            if answer == _answer(cell.source):
                continue
            before = cell.source.split("\n")[node.lineno - 1]
            after_lines = mutated.split("\n")
            after = after_lines[node.lineno - 1] if len(after_lines) >= node.lineno else ""
            line = _answer("\n".join(cell.source.split("\n")[:node.lineno])).count("\n") + 1
            made.append(Mutant(f"{notebook}-{len(made):03d}", notebook, grade_id, task or grade_id, operator, line,
                               before, after, answer))
    return made


def sample(made: list[Mutant], limit: int | None, seed: int) -> list[Mutant]:
    """At most ``limit`` mutants, drawn reproducibly and spread over the operators and answer cells."""
    if limit is None or len(made) <= limit:
        return list(made)
    rng = random.Random(seed)
    groups: dict[tuple, list[Mutant]] = {}
    for m in made:
        groups.setdefault((m.cell, m.operator), []).append(m)
    for group in groups.values():
        rng.shuffle(group)
    chosen, keys = [], sorted(groups)
    while len(chosen) < limit:
        for key in keys:
            if groups[key] and len(chosen) < limit:
                chosen.append(groups[key].pop())
    return sorted(chosen, key=lambda m: m.id)


# ----------------------------------------------------------------------------------------------- grading
def audit(root: str | Path, assignment: str, notebooks: list[str] | None = None, limit: int | None = 40,
          seed: int = 0, workers: int | None = None, workdir: str | Path | None = None, progress: bool = True,
          chosen: list[Mutant] | None = None) -> Audit:
    """Grade mutants of the solutions with the real pipeline; see the module docstring.

    ``chosen``: grade exactly these mutants (of ``notebooks``) instead of drawing them."""
    import tempfile

    started = time.perf_counter()
    root = Path(root)
    names = notebooks or course.released_notebooks(root, assignment)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(workdir) if workdir else Path(scratch)
        env = offline.prepare(base / "offline-data")
        trial = base / "course"
        if trial.exists():
            shutil.rmtree(trial)
        course.copy_course(root, trial)
        course.nbgrader(trial, "generate_assignment", assignment, "--force", env=env)
        given, chosen, made = chosen, [], {}
        for notebook in names:
            source = nbformat.read(root / "source" / assignment / f"{notebook}.ipynb", as_version=4)
            every = mutants(source, notebook)
            made[notebook] = len(every)
            chosen += [m for m in given if m.notebook == notebook] if given is not None else sample(every, limit, seed)
            solution = submissions.build(trial, assignment, notebook)
            _write(trial, "audit-solution", assignment, notebook, solution)
            release = submissions.read(trial / "release" / assignment / f"{notebook}.ipynb")
            for mutant in chosen:
                if mutant.notebook == notebook:
                    _write(trial, f"audit-{mutant.id}", assignment, notebook,
                           submissions.fill(release, {**submissions.solution_answers(source), mutant.cell: mutant.answer}))
        graded = autograde(trial, assignment, students="audit-*", workers=workers, force=True, progress=progress,
                           env=env, canary=False)  # the solution is graded among the mutants: its own baseline
        failed = {o.student: o.message for o in graded if o.status == "failed"}
        scores = course.cell_scores(trial, assignment)
    result = Audit(assignment, [], made)
    solution = {(r.notebook, r.grade_id): r for r in scores.get("audit-solution", []) if r.auto}
    result.baseline = [f"the solution scores {r.score} of {r.max_score} in {nb}/{g}"
                       for (nb, g), r in solution.items() if nb in names and r.score != r.max_score]
    result.baseline += [f"audit-solution: {failed['audit-solution']}"] if "audit-solution" in failed else []
    for mutant in chosen:
        rows = [r for r in scores.get(f"audit-{mutant.id}", []) if r.auto and r.notebook == mutant.notebook]
        if not rows:  # grading itself failed: the notebook got nothing
            result.outcomes.append(Outcome(mutant, own=1.0, elsewhere=0.0))
            continue
        own = sum(r.max_score - (r.score or 0) for r in rows if r.task == mutant.task)
        elsewhere = sum(r.max_score - (r.score or 0) for r in rows if r.task != mutant.task)
        result.outcomes.append(Outcome(mutant, own, elsewhere))
    result.seconds = time.perf_counter() - started
    return result


def _write(root: Path, student: str, assignment: str, notebook: str, nb) -> None:
    path = root / "submitted" / student / assignment / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(copy.deepcopy(nb), path)


def write_report(root: str | Path, result: Audit) -> Path:
    """``reports/<assignment>/audit.html``: caught and surviving mutants per notebook and task."""
    notebooks = []
    for notebook, outcomes in result.by(lambda m: m.notebook).items():
        tasks = []
        for task in dict.fromkeys(o.mutant.task for o in outcomes):
            mine = [o for o in outcomes if o.mutant.task == task]
            tasks.append(dict(task=task, made=len(mine), caught=sum(o.caught for o in mine),
                              elsewhere=sum(o.own == 0 and o.elsewhere > 0 for o in mine)))
        notebooks.append(dict(name=notebook, outcomes=outcomes, made=result.made.get(notebook, len(outcomes)),
                              caught=sum(o.caught for o in outcomes), rate=result.rate(outcomes), tasks=tasks,
                              survivors=[o.mutant for o in outcomes if not o.caught]))
    page = render("audit.html.j2", result=result, notebooks=notebooks)
    path = course.Layout(root).reports(result.assignment) / "audit.html"
    path.write_text(page, encoding="utf-8")
    return path

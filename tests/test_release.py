"""release/ is generated from source/, up to date, and free of solutions, hidden tests and mark schemes."""

from __future__ import annotations

import re

import nbformat
import pytest

from coursekit import course

ROOT = course.ROOT
LEAKS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
         "BEGIN MARK SCHEME", "END MARK SCHEME", "Mark scheme", "coursekit")


def notebooks():
    return [(a, nb) for a in course.assignments(ROOT) for nb in course.released_notebooks(ROOT, a)]


def cells_of(nb):
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in nb.cells]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    root = course.copy_course(ROOT, tmp_path_factory.mktemp("release"))
    for assignment in course.assignments(root):
        if course.released_notebooks(root, assignment):
            course.nbgrader(root, "generate_assignment", assignment, "--force")
    return root


@pytest.mark.parametrize("assignment,name", notebooks())
def test_release_is_up_to_date(regenerated, assignment, name):
    committed = nbformat.read(ROOT / "release" / assignment / f"{name}.ipynb", as_version=4)
    fresh = nbformat.read(regenerated / "release" / assignment / f"{name}.ipynb", as_version=4)
    assert cells_of(committed) == cells_of(fresh), (
        f"release/{assignment}/{name}.ipynb is stale: run `nbgrader generate_assignment {assignment} --force`")


@pytest.mark.parametrize("assignment,name", notebooks())
def test_release_holds_no_solution_hidden_test_or_mark_scheme(assignment, name):
    text = (ROOT / "release" / assignment / f"{name}.ipynb").read_text()
    found = [leak for leak in LEAKS if leak in text]
    assert not found, f"release/{assignment}/{name}.ipynb contains {found}"


def test_release_has_no_stray_files():
    released = {p.relative_to(ROOT / "release").as_posix() for p in (ROOT / "release").rglob("*") if p.is_file()}
    expected = {f"{a}/{nb}.ipynb" for a, nb in notebooks()}
    assert released == expected


@pytest.mark.parametrize("assignment,name", notebooks())
def test_points_add_up_and_every_graded_part_has_tests(assignment, name):
    nb = nbformat.read(ROOT / "source" / assignment / f"{name}.ipynb", as_version=4)
    title = re.search(r"\((\d+) points(?: \+ (\d+) bonus)?\)", nb.cells[0].source)
    assert title, "the first cell's title states the notebook's points, e.g. (27 points) or (10 points + 3 bonus)"
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    total = sum(c.metadata.nbgrader.points for c in graded)
    stated = float(title.group(1)) + float(title.group(2) or 0)
    assert total == stated, f"grade cells add up to {total}, the title says {title.group(0)}"

    labels = course.task_labels(nb)
    headings = {}
    for cell in nb.cells:
        match = re.search(r"^#+\s*(\d+\([a-z]\)).*\((\d+(?:\.\d+)?) points?\)", cell.source, re.M)
        if cell.cell_type == "markdown" and match:
            headings[match.group(1)] = float(match.group(2))
    by_task = {}
    for cell in graded:
        by_task[labels[cell.metadata.nbgrader.grade_id]] = by_task.get(labels[cell.metadata.nbgrader.grade_id], 0) \
            + cell.metadata.nbgrader.points
    assert by_task == headings, "the points in the task headings must match the grade cells below them"

    for cell in graded:
        meta = cell.metadata.nbgrader
        if cell.cell_type == "code":
            assert cell.source.startswith("# "), f"{meta.grade_id}: a test cell starts with a comment of what it checks"
            rubric = re.search(r"Rubric\(\"([^\"]+)\", points=(\d+(?:\.\d+)?)\)", cell.source)
            assert rubric, f"{meta.grade_id}: hidden tests use coursekit.kernel.grading.Rubric"
            assert rubric.group(1) == labels[meta.grade_id] and float(rubric.group(2)) == meta.points, (
                f"{meta.grade_id}: Rubric({rubric.group(1)!r}, points={rubric.group(2)}) does not match the cell")
            assert "BEGIN HIDDEN TESTS" in cell.source
            assert cell.source.rstrip().endswith("### END HIDDEN TESTS") and "rubric.total()" in cell.source


def rubric_line_points(code: str) -> list[float] | None:
    """The points of every line of a hidden test, in order: ``rubric.check(<points>, ...)`` and
    ``rubric.award(<score>, <points>, ...)``; None when a line's points are computed (the quiz's)."""
    import ast

    points = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "rubric":
            index = {"check": 0, "award": 1}.get(node.func.attr)
            if index is None:
                continue
            argument = node.args[index] if len(node.args) > index else None
            if not isinstance(argument, ast.Constant):
                return None
            points.append((node.lineno, float(argument.value)))
    return [p for _, p in sorted(points)]


MARK_SCHEME = re.compile(r"BEGIN MARK SCHEME(.*?)END MARK SCHEME", re.S)
SCHEME_LINE = re.compile(r"^- (\d+(?:\.\d+)?): ", re.M)


@pytest.mark.parametrize("assignment,name", notebooks())
def test_every_code_task_has_a_mark_scheme_with_the_lines_of_its_hidden_tests(assignment, name):
    """The graders' mark scheme of a code task lists the hidden tests' lines with the same points, in order."""
    nb = nbformat.read(ROOT / "source" / assignment / f"{name}.ipynb", as_version=4)
    schemes, lines = {}, {}
    for task, cell in course.cells_with_tasks(nb):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and MARK_SCHEME.search(cell.source) and task not in schemes:
            schemes[task] = [float(p) for p in SCHEME_LINE.findall(MARK_SCHEME.search(cell.source).group(1))]
        if cell.cell_type == "code" and meta.get("grade"):
            found = rubric_line_points(cell.source)
            if found is not None:
                lines.setdefault(task, []).extend(found)
    missing = sorted(task for task in lines if task not in schemes)
    assert not missing, f"no mark scheme for {missing}"
    for task, points in lines.items():
        assert schemes[task] == points, f"{task}: the mark scheme lists {schemes[task]}, the hidden tests {points}"

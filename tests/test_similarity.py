"""The similarity report for a class: 60 generated submissions, a planted copied pair ranks first, answers that
match the solution are set apart, and the page stays short."""

from __future__ import annotations

import random
import re

import nbformat

from coursekit import course, similarity, submissions

ROOT = course.ROOT
TASKS = {"elman_c_encoding": "2(c)", "elman_d_dataset": "2(d)", "elman_e_network": "2(e)", "elman_f_training": "2(f)"}


def own_code(rng: random.Random, lines: int = 14) -> str:
    """A student's own (made-up) code: statements of varied shape, so that two of them share no long token runs."""
    shapes = [
        lambda: f"v{rng.randint(0, 99)} = [w * {rng.random():.3f} for w in range({rng.randint(2, 40)}) if w % {rng.randint(2, 9)}]",
        lambda: f"for k in range({rng.randint(1, 30)}):\n    total{rng.randint(0, 9)} = k ** {rng.randint(2, 5)} - {rng.randint(1, 99)}",
        lambda: f"if len(names) > {rng.randint(1, 50)}:\n    print('{rng.choice('abcdef')}' * {rng.randint(1, 9)})",
        lambda: f"x{rng.randint(0, 9)} = torch.zeros({rng.randint(1, 9)}, {rng.randint(1, 9)}).sum(dim={rng.randint(0, 1)})",
        lambda: f"result = dict(zip({list(range(rng.randint(1, 4)))}, '{rng.choice(['ab', 'cd', 'ef'])}'))",
        lambda: f"while {rng.randint(0, 5)} < {rng.randint(6, 9)}:\n    break",
        lambda: f"def helper{rng.randint(0, 99)}(a, b={rng.randint(0, 9)}):\n    return (a + b) * {rng.randint(2, 7)}",
    ]
    return "\n".join(rng.choice(shapes)() for _ in range(lines))


def test_a_planted_copy_ranks_first_in_a_class_of_60_and_the_page_stays_short(tmp_path):
    root = course.copy_course(ROOT, tmp_path / "course")
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text().replace(
        'c.CourseKit.similarity_skip = ["4_true_false_quiz"]',
        'c.CourseKit.similarity_skip = ["1_gradcam", "3_svhn_cnn", "4_true_false_quiz"]'))
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    solution = submissions.solution_answers(nbformat.read(root / "source" / "exam" / "2_elman_gender.ipynb",
                                                          as_version=4))
    release = submissions.read(root / "release" / "exam" / "2_elman_gender.ipynb")
    rng = random.Random(0)
    copied = {cell: own_code(random.Random(f"copied-{cell}")) for cell in TASKS}
    shared = {cell: own_code(random.Random(f"shared-{cell}")) for cell in TASKS}
    once = own_code(random.Random("once"))
    for k in range(60):
        student = f"s{k:02d}"
        answers = {}
        for cell in TASKS:
            if student in ("s07", "s42") and cell != "elman_c_encoding":
                answers[cell] = copied[cell]  # the same code of their own in three tasks
            elif student in ("s20", "s21", "s22") and cell in ("elman_d_dataset", "elman_e_network"):
                answers[cell] = shared[cell]  # a group of three, in two tasks
            elif student in ("s10", "s11") and cell == "elman_c_encoding":
                answers[cell] = once  # two students alike in one short task
            elif rng.random() < 0.4:
                answers[cell] = solution[cell]  # right, like everyone who solved it
            else:
                answers[cell] = own_code(rng)
        path = root / "autograded" / student / "exam" / "2_elman_gender.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(submissions.fill(release, answers), path)

    page = similarity.similarity_report(root, "exam").read_text()
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>", page)
    assert rows[0] == ("1", "s07 and s42"), rows[:3]
    assert len(rows) <= 25 and len(page) < 150_000, (len(rows), len(page))  # short, whatever the class size
    pairs, answers = similarity.task_pairs(root, "exam")
    ranking = similarity.rank(pairs, answers)
    # dozens of students wrote the solution: their mutual overlaps are explained by it, not listed as pairs
    assert all(ranking.solution_matches[("2_elman_gender", task)] >= 15 for task in TASKS.values())
    weights = {(s.a, s.b): s.weight for s in ranking.students}
    assert set(weights) == {("s07", "s42"), ("s20", "s21"), ("s20", "s22"), ("s21", "s22"), ("s10", "s11")}
    assert weights[("s07", "s42")] > weights[("s20", "s21")] > weights[("s10", "s11")] > 0
    assert ranking.clusters == [["s20", "s21", "s22"]]
    assert "s20, s21, s22" in page

    view = similarity.pair_report(root, "exam", "s07", "s42").read_text()
    assert view.count("<mark>") >= 3 and "2(d)" in view and "2(f)" in view

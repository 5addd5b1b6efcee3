"""lab/1_autodiff: the reference code of the hidden tests (coursekit/kernel/autodiff.py) agrees with torch and finite
differences; other correct answers (renumbered intermediates, the seven-node graph of the formula read left to
right, other trace keys and number types, another engine) earn full points; further mistakes each cost their own
check only, and cheap tricks (all-zero traces) earn nothing.  The known mistakes themselves are graded with
nbgrader by the pipeline tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coursekit.kernel import autodiff as ad
from coursekit import course

from .notebook_cells import SourceNotebook

ROOT = course.ROOT
SOURCE = ROOT / "source" / "lab" / "1_autodiff.ipynb"
ANSWERS = ("autodiff_a_graph", "autodiff_b_forward", "autodiff_c_backward", "autodiff_d_value")
TESTS = {"autodiff_a_tests": 2, "autodiff_b_tests": 1, "autodiff_c_tests": 2, "autodiff_d_tests": 5}

NOTEBOOK = SourceNotebook(SOURCE, setup=("autodiff_setup", "autodiff_helpers"), answers=ANSWERS)
cells, answers, solution = NOTEBOOK.cells, NOTEBOOK.solved, NOTEBOOK.solution
run_hidden_test, edited = NOTEBOOK.run_hidden_test, NOTEBOOK.edited


def scores(namespace: dict) -> dict:
    return {grade_id: run_hidden_test(grade_id, namespace)[0] for grade_id in TESTS}


def traces(nodes, rename=None, convert=float) -> str:
    """Answer cells for 1(b) and 1(c): the exact traces of ``nodes`` under other names and number types."""
    values, adjoints = ad.torch_trace(nodes)
    rename = rename or {}
    names = [n for n, _, _ in nodes]
    forward = {rename.get(n, n): convert(values[n]) for n in names}
    backward = {rename.get(n, n): convert(adjoints[n]) for n in reversed(names)}
    backward.update(x1=convert(adjoints["x1"]), x2=convert(adjoints["x2"]))
    return forward, backward


def with_traces(graph_text: str, forward, backward) -> dict:
    ns = solution(autodiff_a_graph=graph_text)
    ns["forward_trace"], ns["backward_trace"] = forward, backward
    return ns


# -- the reference code -----------------------------------------------------------------------------------------

def test_reference_graphs_compute_y_and_their_adjoints_are_the_gradient():
    h = 1e-6
    for nodes in ad.REFERENCE_GRAPHS.values():
        assert ad.computes_y_problem(nodes) is None
        assert ad.recomputed_problem(nodes) is None
        values, adjoints = ad.torch_trace(nodes)
        assert math.isclose(values[nodes[-1][0]], ad.y_reference(1.5, 0.5), rel_tol=1e-12)
        numeric = ((ad.y_reference(1.5 + h, 0.5) - ad.y_reference(1.5 - h, 0.5)) / (2 * h),
                   (ad.y_reference(1.5, 0.5 + h) - ad.y_reference(1.5, 0.5 - h)) / (2 * h))
        assert math.isclose(adjoints["x1"], numeric[0], rel_tol=1e-7)
        assert math.isclose(adjoints["x2"], numeric[1], rel_tol=1e-7)
        assert adjoints[nodes[-1][0]] == 1.0


def test_reference_engine_rules_and_backward_match_torch_on_random_graphs():
    class Bare:
        def __init__(self, data, parents=(), op=""):
            self.data, self.grad, self.parents, self.op = float(data), 0.0, tuple(parents), op
            self._backward = lambda: None

    for op in ad.ARITY:
        setattr(Bare, ad.METHODS[op], ad.RULES[op])
    Bare.backward = ad.reference_backward
    for op in ad.ARITY:
        assert ad.rule_problem(Bare, op) is None
    assert ad.accumulation_problems(Bare) == {}
    assert ad.backward_problem(Bare) is None
    ops_seen = set()
    for seed in range(40):
        nodes, x = ad.random_graph(seed)
        ops_seen |= {op for _, op, _ in nodes}
        values, _ = ad.torch_trace(nodes, x)
        assert all(abs(v) < 1e4 for v in values.values()), "random graphs keep moderate values"
        assert ad.engine_problem(Bare, nodes, x, f"seed {seed}") is None
    assert ops_seen == set(ad.ARITY)


def test_parse_graph_and_half_points():
    nodes = ad.parse_graph([("a", "/", ("x1", "x2")), ("b", "SIN", "a")])
    assert nodes == [("a", "div", ("x1", "x2")), ("b", "sin", ("a",))]
    with pytest.raises(ad.GraphError, match="unknown operation"):
        ad.parse_graph([("a", "/", ("x1", "x2"))], strict=True)
    with pytest.raises(ad.GraphError, match="neither x1, x2 nor an earlier node"):
        ad.parse_graph([("a", "sin", ("b",)), ("b", "exp", ("x1",))])
    with pytest.raises(ad.GraphError, match="takes 2 inputs"):
        ad.parse_graph([("a", "mul", ("x1",))])
    assert [ad.half_points(k, 8, 2) for k in (8, 7, 6, 5, 4, 1, 0)] == [2, 1.5, 1.5, 1, 1, 0, 0]
    assert [ad.half_points(k, 6, 1) for k in (6, 5, 3, 2)] == [1, 0.5, 0.5, 0]


# -- other correct answers --------------------------------------------------------------------------------------

SWAPPED = '''graph = [
    ("v1", "div", ("x1", "x2")),
    ("v2", "sin", ("v1",)),
    ("v4", "exp", ("x2",)),
    ("v3", "sub", ("v1", "v4")),
    ("v5", "add", ("v2", "v3")),
    ("v6", "mul", ("v5", "v3")),
]'''

LEFT_TO_RIGHT = '''graph = [
    ("a", "div", ("x1", "x2")),
    ("b", "exp", ("x2",)),
    ("c", "sin", ("a",)),
    ("d", "add", ("c", "a")),
    ("e", "sub", ("d", "b")),
    ("f", "sub", ("a", "b")),
    ("g", "mul", ("e", "f")),
]'''

EXPANDED = '''graph = [  # (s + d) * d = s * d + d * d
    ("v1", "div", ("x1", "x2")),
    ("v2", "sin", ("v1",)),
    ("v3", "exp", ("x2",)),
    ("v4", "sub", ("v1", "v3")),
    ("v5", "mul", ("v2", "v4")),
    ("v6", "mul", ("v4", "v4")),
    ("v7", "add", ("v5", "v6")),
]'''


@pytest.mark.parametrize("graph_text", [SWAPPED, LEFT_TO_RIGHT, EXPANDED], ids=["swapped", "left-to-right", "expanded"])
def test_other_correct_graphs_with_their_traces_earn_full_points(graph_text):
    ns = solution(autodiff_a_graph=graph_text)
    forward, backward = traces(ns["graph"], convert=lambda v: v)
    ns["forward_trace"], ns["backward_trace"] = forward, backward
    for grade_id in ("autodiff_a_tests", "autodiff_b_tests", "autodiff_c_tests"):
        assert run_hidden_test(grade_id, ns)[0] == TESTS[grade_id], run_hidden_test(grade_id, ns)[1]


def test_traces_right_up_to_renumbering_and_in_other_number_types_earn_full_points():
    reference = ad.REFERENCE_GRAPHS["reference graph"]
    rename = {"v1": "w6", "v2": "w3", "v3": "w1", "v4": "w5", "v5": "w2", "v6": "w4"}  # not the graph's names
    for convert in (float, np.float64, lambda v: torch.tensor(v, dtype=torch.float64)):
        forward, backward = traces(reference, rename, convert)
        ns = with_traces(answers()["autodiff_a_graph"], dict(reversed(list(forward.items()))), backward)
        assert run_hidden_test("autodiff_b_tests", ns)[0] == 1
        assert run_hidden_test("autodiff_c_tests", ns)[0] == 2
    # without any graph (1(a) not done), a right trace still earns its points
    forward, backward = traces(reference)
    ns = with_traces(answers()["autodiff_a_graph"], forward, backward)
    del ns["graph"]
    assert run_hidden_test("autodiff_b_tests", ns)[0] == 1
    assert run_hidden_test("autodiff_c_tests", ns)[0] == 2


def test_another_correct_engine_earns_full_points():
    engine = edited(
        "autodiff_d_value",
        ('''        order, visited = [], set()

        def visit(node):
            if node not in visited:
                visited.add(node)
                for parent in node.parents:
                    visit(parent)
                order.append(node)

        visit(self)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()''',
         '''        # Kahn's algorithm: a node is ready once all its consumers have run
        users, stack, seen = {}, [self], {id(self)}
        while stack:
            node = stack.pop()
            for parent in node.parents:
                users[id(parent)] = users.get(id(parent), 0) + 1
                if id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append(parent)
        self.grad = 1.0
        ready = [self]
        while ready:
            node = ready.pop()
            node._backward()
            for parent in node.parents:
                users[id(parent)] -= 1
                if users[id(parent)] == 0:
                    ready.append(parent)'''),
        ('''            self.grad += out.grad * out.data''',
         '''            self.grad = self.grad + math.exp(self.data) * out.grad'''),
        ('''            other.grad += -out.grad * self.data / other.data ** 2''',
         '''            other.grad -= out.grad * out.data / other.data'''),
    )
    ns = solution(autodiff_d_value=engine)
    score, output = run_hidden_test("autodiff_d_tests", ns)
    assert score == 5, output


def test_solution_scores_and_untouched_cells_score_nothing():
    assert scores(solution()) == TESTS
    ns = solution()
    del ns["graph"]
    ns["forward_trace"], ns["backward_trace"] = {"x1": 1.5, "x2": 0.5}, {}
    assert run_hidden_test("autodiff_a_tests", ns)[0] == 0
    assert run_hidden_test("autodiff_b_tests", ns)[0] == 0
    assert run_hidden_test("autodiff_c_tests", ns)[0] == 0


# -- further mistakes: one check each ---------------------------------------------------------------------------

def test_graph_format_slip_costs_only_the_format_point():
    graph = edited("autodiff_a_graph", ('("v1", "div", ("x1", "x2"))', '("v1", "/", ("x1", "x2"))'),
                   ('("v2", "sin", ("v1",))', '("v2", "sin", "v1")'))
    ns = solution(autodiff_a_graph=graph)
    assert scores(ns) == {**TESTS, "autodiff_a_tests": 1.5}


def test_graph_out_of_order_costs_the_graph_only():
    graph = '''graph = [
    ("v1", "div", ("x1", "x2")),
    ("v2", "sin", ("v1",)),
    ("v4", "sub", ("v1", "v3")),
    ("v3", "exp", ("x2",)),
    ("v5", "add", ("v2", "v4")),
    ("v6", "mul", ("v5", "v4")),
]'''
    ns = solution(autodiff_a_graph=graph)
    assert scores(ns) == {**TESTS, "autodiff_a_tests": 0}


def test_one_wrong_forward_value_costs_one_entry_and_is_carried_forward():
    forward = edited("autodiff_b_forward", ('v["v1"] = v["x1"] / v["x2"]', 'v["v1"] = v["x2"] / v["x1"]'))
    ns = solution(autodiff_b_forward=forward)
    score, output = run_hidden_test("autodiff_b_tests", ns)
    assert score == 0.5 and "5 of 6" in output, output
    assert "v1 = 0.3333333" in output


def test_a_crash_in_the_forward_trace_does_not_cost_the_backward_trace():
    """A typo stops the 1(b) cell at v2, so the (correct) 1(c) code stops at the first missing value: a human reads
    past the crash and gives 2/2 for 1(c); the rubric runs the 1(c) code again with the reference values there."""
    forward = edited("autodiff_b_forward", ('math.sin(v["v1"])', 'math.sine(v["v1"])'))
    ns = solution(autodiff_b_forward=forward, allow_errors=True)
    assert [grade_id for grade_id, _ in ns["_errors"]] == ["autodiff_b_forward", "autodiff_c_backward"]
    assert run_hidden_test("autodiff_b_tests", ns)[0] == 0
    score, output = run_hidden_test("autodiff_c_tests", ns)
    assert score == 2, output
    assert "your forward trace has no values for v2, v3, v4, v5, v6" in output, output


def test_a_derivative_written_as_the_students_own_forward_value_is_carried_forward():
    """d exp(x2)/dx2 written as the (wrong) forward value of exp(x2): right given the student's own values."""
    forward = edited("autodiff_b_forward", ('v["v3"] = math.exp(v["x2"])', 'v["v3"] = math.exp(v["x1"])'))
    backward = edited("autodiff_c_backward", ('vbar["v3"] * math.exp(v["x2"])', 'vbar["v3"] * v["v3"]'))
    ns = solution(autodiff_b_forward=forward, autodiff_c_backward=backward)
    assert run_hidden_test("autodiff_b_tests", ns)[0] == 0.5  # v3 wrong, v4..v6 carried forward: 5 of 6
    score, output = run_hidden_test("autodiff_c_tests", ns)
    assert score == 2, output


def test_all_zero_traces_earn_nothing():
    ns = solution()
    ns["forward_trace"] = {"x1": 1.5, "x2": 0.5, **{f"v{k}": 0.0 for k in range(1, 7)}}
    ns["backward_trace"] = {name: 0.0 for name in [f"v{k}" for k in range(1, 7)] + ["x1", "x2"]}
    assert run_hidden_test("autodiff_b_tests", ns)[0] == 0
    assert run_hidden_test("autodiff_c_tests", ns)[0] == 0


ENGINE_MISTAKES = {
    "mul rule swapped": (('self.grad += out.grad * other.data', 'self.grad += out.grad * self.data'),),
    "sin derivative -cos": (('self.grad += out.grad * math.cos(self.data)',
                             'self.grad -= out.grad * math.cos(self.data)'),),
    "exp value": (('out = Value(math.exp(self.data), (self,), "exp")',
                   'out = Value(math.exp(self.data) + 1, (self,), "exp")'),),
    "no seed": (('        self.grad = 1.0\n        for node', '        for node'),),
    "rules run twice": (('            if node not in visited:\n                visited.add(node)\n'
                          '                for parent',
                          '            if True:\n                for parent'),),
}
ENGINE_COST = {"mul rule swapped": 0.5, "sin derivative -cos": 0.5, "exp value": 0.5, "no seed": 1,
               "rules run twice": 1}


@pytest.mark.parametrize("mistake", list(ENGINE_MISTAKES))
def test_each_further_engine_mistake_costs_its_own_check(mistake):
    ns = solution(autodiff_d_value=edited("autodiff_d_value", *ENGINE_MISTAKES[mistake]))
    score, output = run_hidden_test("autodiff_d_tests", ns)
    assert score == 5 - ENGINE_COST[mistake], output
    assert output.count("\u2718") == 1, output

"""Reference code for the hidden tests of lab/1_autodiff (reverse-mode automatic differentiation).

A *graph* is what the students write in 1(a): a list of nodes ``(name, op, inputs)`` in evaluation
order, e.g. ``("v1", "div", ("x1", "x2"))``; ``op`` is one of the six elementary operations of
:data:`ARITY`, ``inputs`` names the graph's inputs (``x1``, ``x2``) or earlier nodes, and the last
node is the output.  Everything here is computed in float64 with torch autograd:

* :func:`parse_graph` checks a graph and returns it normalized (or raises :class:`GraphError`, an
  ``AssertionError`` whose message says what is wrong), :func:`torch_trace` evaluates it and returns
  the value and the adjoint d(output)/d(node) of every node and input;
* :func:`grade_forward` and :func:`grade_backward` grade the traces of 1(b) and 1(c) entry by entry,
  against the student's own graph (so that a mistake in 1(a) is not counted again; an entry that
  follows correctly from the student's own wrong entries counts as right: error carried forward),
  and against the reference graphs of y with the student's names matched by value (so that a trace
  that is right up to renumbering, or right for y while the graph has a mistake, earns its points);
  the better of the two counts;
* :data:`RULES`, :func:`reference_backward` and the ``*_problem(s)`` functions test the parts of a
  student's scalar ``Value`` engine (1(d)) one at a time, and :func:`patched` swaps reference
  versions of the parts found wrong into the student's class, so that the end-to-end comparison
  with torch does not charge a mistake twice.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import operator
import re
from dataclasses import dataclass, field

import torch

ARITY = {"add": 2, "sub": 2, "mul": 2, "div": 2, "sin": 1, "exp": 1}
ALIASES = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
COMMUTATIVE = frozenset({"add", "mul"})
SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
X = {"x1": 1.5, "x2": 0.5}
TOL = 1e-6          # hand traces: relative and absolute tolerance
ENGINE_TOL = 1e-8   # the Value engine against torch, both in float64

REFERENCE_GRAPHS = {
    # x1/x2 - exp(x2) computed once and used twice
    "reference graph": [
        ("v1", "div", ("x1", "x2")),
        ("v2", "sin", ("v1",)),
        ("v3", "exp", ("x2",)),
        ("v4", "sub", ("v1", "v3")),
        ("v5", "add", ("v2", "v4")),
        ("v6", "mul", ("v5", "v4")),
    ],
    # the formula as written, left to right: (sin(v1) + v1) - v3 and v1 - v3
    "reference graph as written": [
        ("v1", "div", ("x1", "x2")),
        ("v2", "sin", ("v1",)),
        ("v3", "add", ("v2", "v1")),
        ("v4", "exp", ("x2",)),
        ("v5", "sub", ("v3", "v4")),
        ("v6", "sub", ("v1", "v4")),
        ("v7", "mul", ("v5", "v6")),
    ],
}
MIN_NODES = min(len(g) for g in REFERENCE_GRAPHS.values())  # intermediates y needs at least

_TORCH_OPS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "sin": torch.sin,
              "exp": torch.exp}
_MATH_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
             "sin": math.sin, "exp": math.exp}


class GraphError(AssertionError):
    """A graph that cannot be used; the message says why, in a grader's words."""


# -- graphs -------------------------------------------------------------------------------------------

def parse_graph(graph, inputs=tuple(X), strict: bool = False) -> list[tuple[str, str, tuple]]:
    """The graph as a list of ``(name, op, inputs)`` with known op names and tuples of input names.

    ``strict=False`` also accepts ``+ - * /`` and upper case for the op names and a bare name instead of
    a 1-tuple of inputs; ``strict=True`` only the format the notebook asks for.
    """
    if graph is None:
        raise GraphError("there is no graph: the variable graph is not defined (or None)")
    if isinstance(graph, (str, bytes, dict)) or not isinstance(graph, (list, tuple)):
        raise GraphError(f"the graph is a {type(graph).__name__}, not a list of (name, op, inputs) tuples")
    nodes, known = [], set(inputs)
    for k, node in enumerate(graph, start=1):
        if not isinstance(node, (list, tuple)) or len(node) != 3:
            raise GraphError(f"node {k} is {node!r}, not a tuple (name, op, inputs)")
        name, op, args = node
        if not isinstance(name, str) or not name:
            raise GraphError(f"node {k} has the name {name!r}, not a string like 'v{k}'")
        if name in inputs:
            raise GraphError(f"node {k} is named {name!r}, the name of an input")
        if name in known:
            raise GraphError(f"two nodes are named {name!r}")
        if not isinstance(op, str):
            raise GraphError(f"{name}: the operation {op!r} is not a string")
        if not strict:
            op = ALIASES.get(op.strip(), op.strip().lower())
        if op not in ARITY:
            raise GraphError(f"{name}: unknown operation {op!r}, use one of {', '.join(ARITY)}")
        if isinstance(args, str) and not strict:
            args = (args,)
        if not isinstance(args, (list, tuple)):
            raise GraphError(f"{name}: the inputs {args!r} are not a tuple of names, e.g. ('v1',) or ('x1', 'x2')")
        args = tuple(args)
        if len(args) != ARITY[op]:
            raise GraphError(f"{name}: {op} takes {ARITY[op]} input{'s' if ARITY[op] > 1 else ''}, "
                             f"the node has {len(args)}: {args!r}")
        for arg in args:
            if not isinstance(arg, str) or arg not in known:
                raise GraphError(f"{name}: the input {arg!r} is neither {', '.join(inputs)} nor an earlier node")
        nodes.append((name, op, args))
        known.add(name)
    if not nodes:
        raise GraphError("the graph has no nodes")
    return nodes


def torch_trace(nodes, x=None) -> tuple[dict, dict]:
    """``(values, adjoints)`` of every input and node, in float64 with torch autograd.

    The output is the last node; a node or input the output does not depend on has the adjoint 0.
    """
    x = dict(X if x is None else x)
    tensors = {name: torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for name, v in x.items()}
    for name, op, args in nodes:
        tensors[name] = _TORCH_OPS[op](*(tensors[a] for a in args))
        tensors[name].retain_grad()
    tensors[nodes[-1][0]].backward()
    values = {name: t.item() for name, t in tensors.items()}
    adjoints = {name: (t.grad.item() if t.grad is not None else 0.0) for name, t in tensors.items()}
    return values, adjoints


def y_reference(x1: float, x2: float) -> float:
    """y(x1, x2) = (sin(x1/x2) + x1/x2 - exp(x2)) * (x1/x2 - exp(x2)), in float64 with torch."""
    x1, x2 = torch.tensor(x1, dtype=torch.float64), torch.tensor(x2, dtype=torch.float64)
    return ((torch.sin(x1 / x2) + x1 / x2 - torch.exp(x2)) * (x1 / x2 - torch.exp(x2))).item()


def sample_points(n_random: int = 5, seed: int = 0) -> list[dict]:
    """x = (1.5, 0.5) and ``n_random`` seeded points with x1 in [0.5, 2.5], x2 in [0.3, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n_random, 2, generator=g, dtype=torch.float64)
    return [dict(X)] + [{"x1": 0.5 + 2 * a.item(), "x2": 0.3 + 1.2 * b.item()} for a, b in u]


def computes_y_problem(nodes) -> str | None:
    """Why the graph's last node is not y (checked at :func:`sample_points`), or None."""
    for x in sample_points():
        got = torch_trace(nodes, x)[0][nodes[-1][0]]
        want = y_reference(x["x1"], x["x2"])
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            return (f"at x = ({x['x1']:.4g}, {x['x2']:.4g}) the last node {nodes[-1][0]} is {got:.7g}, "
                    f"y is {want:.7g}")
    return None


def expressions(nodes, inputs=tuple(X)) -> dict[str, str]:
    """``{name: expression}``, e.g. ``{"v4": "x1/x2 - exp(x2)"}``, with add and mul operands sorted, so
    that two nodes compute the same thing exactly when their expressions are equal."""
    text, atomic = {i: i for i in inputs}, {i: True for i in inputs}
    for name, op, args in nodes:
        parts = [text[a] if atomic[a] or op in ("sin", "exp") else f"({text[a]})" for a in args]
        if op in COMMUTATIVE:
            parts.sort()
        if op in SYMBOLS:
            sep = SYMBOLS[op] if op in ("mul", "div") else f" {SYMBOLS[op]} "
            text[name], atomic[name] = sep.join(parts), False
        else:
            text[name], atomic[name] = f"{op}({parts[0]})", True
    return text


def recomputed_problem(nodes) -> str | None:
    """Why the graph does not compute x1/x2 and exp(x2) once each and nothing twice, or None."""
    exprs = expressions(nodes)
    by_expr: dict[str, list[str]] = {}
    for name, _, _ in nodes:
        by_expr.setdefault(exprs[name], []).append(name)
    twice = [f"{e} is computed by {len(names)} nodes ({', '.join(names)})" for e, names in by_expr.items()
             if len(names) > 1]
    if twice:
        return "; ".join(twice) + ": compute it once and use that node again"
    missing = [e for e in ("x1/x2", "exp(x2)") if e not in by_expr]
    if missing:
        return f"no node computes {' or '.join(missing)}, which y uses twice"
    return None


# -- grading the traces ---------------------------------------------------------------------------------

def number(value) -> float | None:
    """A finite float from an int, float, numpy scalar or one-element tensor/array; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, numbers.Real):
            result = float(value)
        elif (torch.is_tensor(value) or hasattr(value, "item")) and getattr(value, "size", None) is not None \
                and _numel(value) == 1:
            result = float(value.item())
        else:
            return None
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None
    return result if math.isfinite(result) else None


def _numel(value) -> int:
    return value.numel() if torch.is_tensor(value) else int(getattr(value, "size", 0))


def close(got: float | None, want: float, tol: float = TOL) -> bool:
    return got is not None and math.isclose(got, want, rel_tol=tol, abs_tol=tol)


def as_dict(trace) -> dict:
    """The student's trace as a dict of numbers (entries that are no numbers become None)."""
    if trace is None:
        return {}
    if not isinstance(trace, dict):
        try:
            trace = dict(trace)
        except (TypeError, ValueError):
            return {}
    return {str(k): number(v) for k, v in trace.items()}


def half_points(right: int, total: int, points: float) -> float:
    """``points`` times the share of right entries, rounded down to half points."""
    return math.floor(2 * points * right / total + 1e-9) / 2 if total else 0.0


def _partial(op: str, values: list[float], position: int) -> float:
    a = values[0]
    if op in ("add",):
        return 1.0
    if op == "sub":
        return 1.0 if position == 0 else -1.0
    if op == "mul":
        return values[1 - position]
    if op == "div":
        b = values[1]
        return 1.0 / b if position == 0 else -a / b ** 2
    if op == "sin":
        return math.cos(a)
    if op == "exp":
        return math.exp(a)
    raise KeyError(op)


def _fmt(value: float | None) -> str:
    return "missing (or not a number)" if value is None else f"{value:.7g}"


@dataclass
class TraceGrade:
    right: int
    total: int
    basis: str                     # what the entries were compared with
    wrong: list = field(default_factory=list)  # one line per wrong entry

    @property
    def comment(self) -> str:
        shown = self.wrong[:4] + ([f"{len(self.wrong) - 4} more"] if len(self.wrong) > 4 else [])
        if not self.basis:
            return "; ".join(shown)
        return f"against {self.basis}" + (f"; wrong: {'; '.join(shown)}" if shown else "")

    def points(self, out_of: float) -> float:
        return half_points(self.right, self.total, out_of)


def _own_nodes(graph):
    try:
        return parse_graph(graph)
    except Exception:  # noqa: BLE001 - any unusable graph: grade against the reference graphs only
        return None


def _best(grades: list[TraceGrade]) -> TraceGrade:
    return max(grades, key=lambda g: (g.right / g.total, g.right))


def _forward_own(nodes, trace: dict) -> TraceGrade:
    values, _ = torch_trace(nodes)
    student = {**trace, **X}
    right, wrong = 0, []
    for name, op, args in nodes:
        got, want = trace.get(name), values[name]
        ok = close(got, want)
        if not ok and got is not None and all(student.get(a) is not None for a in args):
            try:
                carried = _MATH_OPS[op](*(student[a] for a in args))
                ok = abs(carried) > TOL and close(got, carried)
            except (ArithmeticError, ValueError):
                pass
        right += ok
        if not ok:
            wrong.append(f"{name} = {_fmt(got)}, expected {want:.7g}")
    total = max(len(nodes), MIN_NODES)
    if len(nodes) < MIN_NODES:
        wrong.append(f"the graph has {len(nodes)} nodes, y needs at least {MIN_NODES}")
    return TraceGrade(right, total, "your graph from 1(a)", wrong)


def render(reference) -> str:
    """``"v1 = x1 / x2, v2 = sin(v1), ..."``"""
    return ", ".join(f"{n} = {f' {SYMBOLS[op]} '.join(args)}" if op in SYMBOLS else f"{n} = {op}({args[0]})"
                     for n, op, args in reference)


def _forward_matched(reference, trace: dict) -> tuple[TraceGrade, dict]:
    """Reference nodes matched to the student's entries by value: ``(grade, {reference name: student name})``."""
    values, _ = torch_trace(reference)
    candidates = {k: v for k, v in trace.items() if k not in X and k != "y"}
    mapping, wrong = {}, []
    for name, _, _ in reference:
        match = next((k for k, v in candidates.items() if k not in mapping.values() and close(v, values[name])), None)
        if match is None:
            wrong.append(f"no entry has the value of {name} = {values[name]:.7g}")
        else:
            mapping[name] = match
    return TraceGrade(len(mapping), len(reference), _basis(reference), wrong), mapping


def _basis(reference) -> str:
    return f"the graph {render(reference)}, your names matched by value"


def grade_forward(graph, forward_trace) -> TraceGrade:
    """1(b): the value of every intermediate, against the student's graph and the reference graphs."""
    trace = as_dict(forward_trace)
    if not set(trace) - set(X) - {"y"}:
        return TraceGrade(0, MIN_NODES, "", ["forward_trace holds no values of intermediates"])
    grades = [_forward_matched(ref, trace)[0] for ref in REFERENCE_GRAPHS.values()]
    nodes = _own_nodes(graph)
    if nodes is not None:
        grades.insert(0, _forward_own(nodes, trace))
    return _best(grades)


def _partials(op: str, inputs: list[list[float]], outputs: list[float], position: int) -> set[float]:
    """Every value a correct expression of d(node)/d(input at ``position``) can have, given candidate values of the
    node's inputs (``inputs[k]``: the choices for input k) and of the node itself: d exp(a)/da written as exp(a) or as
    the node's own value, d(a/b)/db as -a/b^2 or -(a/b)/b, d(a*b)/da as b, ..."""
    found = set()
    for values in itertools.product(*inputs):
        try:
            found.add(_partial(op, list(values), position))
        except (ArithmeticError, ValueError):
            pass
        for out in outputs:
            if op == "exp":
                found.add(out)
            elif op == "div" and position == 1 and values[1] != 0:
                found.add(-out / values[1])
    return found


def _backward_own(nodes, forward: dict, backward: dict) -> TraceGrade:
    values, adjoints = torch_trace(nodes)
    output = nodes[-1][0]
    consumers: dict[str, list] = {}
    for node, op, args in nodes:
        for position, arg in enumerate(args):
            consumers.setdefault(arg, []).append((node, op, args, position))

    def choices(name):
        """The values of a node or input a student may have used: the true one and their own."""
        own = X.get(name, forward.get(name))
        return [values[name]] + ([own] if own is not None and not close(own, values[name]) else [])

    def carried_values(name) -> set[float]:
        """Every sum over the consumers of ``name`` of adjoint * local derivative, each from the true or the
        student's own values, in any correct form (error carried forward)."""
        terms = []
        for node, op, args, position in consumers.get(name, []):
            adjoint_choices = [1.0] if node == output else [adjoints[node]] + (
                [backward[node]] if backward.get(node) is not None and not close(backward[node], adjoints[node]) else [])
            partials = _partials(op, [choices(a) for a in args], choices(node), position)
            terms.append({a * p for a in adjoint_choices for p in partials})
        return {sum(combination) for combination in itertools.product(*terms)} if terms else set()

    right, wrong = 0, []
    for name in [n for n, _, _ in nodes] + list(X):
        got, want = backward.get(name), adjoints[name]
        ok = close(got, want)
        if not ok and got is not None and name != output:
            ok = any(abs(value) > TOL and close(got, value) for value in carried_values(name))
        right += ok
        if not ok:
            wrong.append(f"d y/d {name} = {_fmt(got)}, expected {want:.7g}")
    total = max(len(nodes), MIN_NODES) + len(X)
    if len(nodes) < MIN_NODES:
        wrong.append(f"the graph has {len(nodes)} nodes, y needs at least {MIN_NODES}")
    return TraceGrade(right, total, "your graph from 1(a)", wrong)


def _backward_matched(reference, forward: dict, backward: dict) -> TraceGrade:
    _, mapping = _forward_matched(reference, forward)
    _, adjoints = torch_trace(reference)
    used = set(mapping.values())
    right, wrong = 0, []
    for name, _, _ in reference:
        want = adjoints[name]
        if name in mapping:
            ok = close(backward.get(mapping[name]), want)
        else:  # no forward entry to name it by: any unused entry with the right adjoint
            match = next((k for k, v in backward.items()
                          if k not in X and k != "y" and k not in used and close(v, want)), None)
            ok = match is not None
            used.add(match)
        right += ok
        if not ok:
            wrong.append(f"no entry has the adjoint of {name}, d y/d {name} = {want:.7g}")
    for name in X:
        got, want = backward.get(name), adjoints[name]
        right += close(got, want)
        if not close(got, want):
            wrong.append(f"d y/d {name} = {_fmt(got)}, expected {want:.7g}")
    return TraceGrade(right, len(reference) + len(X), _basis(reference), wrong)


def missing_forward(graph, forward_trace) -> list[str]:
    """The nodes of the student's own graph that have no value in their forward trace (e.g. the 1(b) cell stopped
    with an error), in graph order; [] when the graph is unusable."""
    nodes = _own_nodes(graph)
    if nodes is None:
        return []
    trace = as_dict(forward_trace)
    return [name for name, _, _ in nodes if trace.get(name) is None]


def answer_code(history, variable: str) -> str | None:
    """The code of the last cell in the kernel's input history (IPython's ``In``) that assigns ``variable``: the
    student's answer cell, to run it again (hidden test cells, which only read it, are skipped)."""
    assigns = re.compile(rf"^\s*{re.escape(variable)}\s*(\[[^\]]*\])?\s*=[^=]", re.M)
    for source in reversed(list(history or [])):
        if isinstance(source, str) and assigns.search(source) and "BEGIN HIDDEN TESTS" not in source \
                and "Rubric(" not in source:
            return source
    return None


def completed_forward(graph, forward_trace) -> dict:
    """The student's forward trace with the reference values of their own graph where theirs are missing."""
    values, _ = torch_trace(_own_nodes(graph))
    trace = dict(forward_trace) if isinstance(forward_trace, dict) else {}
    for name, value in values.items():
        if number(trace.get(name)) is None:
            trace[name] = value
    return trace


def grade_backward(graph, forward_trace, backward_trace) -> TraceGrade:
    """1(c): every adjoint and dy/dx1, dy/dx2, against the student's graph and the reference graphs."""
    forward, backward = as_dict(forward_trace), as_dict(backward_trace)
    if not backward:
        return TraceGrade(0, MIN_NODES + len(X), "", ["backward_trace holds no adjoints"])
    grades = [_backward_matched(ref, forward, backward) for ref in REFERENCE_GRAPHS.values()]
    nodes = _own_nodes(graph)
    if nodes is not None:
        grades.insert(0, _backward_own(nodes, forward, backward))
    return _best(grades)


# -- the Value engine -------------------------------------------------------------------------------------

METHODS = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__", "sin": "sin", "exp": "exp"}


def _node(cls, data, parents, op, local):
    """A node of the student's class with a reference backward rule: parent.grad += out.grad * local[i]."""
    out = cls(data, parents, op)
    out.parents = tuple(parents)

    def _backward():
        for parent, derivative in zip(parents, local):
            parent.grad += out.grad * derivative
    out._backward = _backward
    return out


def _lift(self, other):
    return other if isinstance(other, type(self)) else type(self)(other)


def _ref_add(self, other):
    other = _lift(self, other)
    return _node(type(self), self.data + other.data, (self, other), "add", (1.0, 1.0))


def _ref_sub(self, other):
    other = _lift(self, other)
    return _node(type(self), self.data - other.data, (self, other), "sub", (1.0, -1.0))


def _ref_mul(self, other):
    other = _lift(self, other)
    return _node(type(self), self.data * other.data, (self, other), "mul", (other.data, self.data))


def _ref_div(self, other):
    other = _lift(self, other)
    return _node(type(self), self.data / other.data, (self, other), "div",
                 (1.0 / other.data, -self.data / other.data ** 2))


def _ref_sin(self):
    return _node(type(self), math.sin(self.data), (self,), "sin", (math.cos(self.data),))


def _ref_exp(self):
    return _node(type(self), math.exp(self.data), (self,), "exp", (math.exp(self.data),))


RULES = {"add": _ref_add, "sub": _ref_sub, "mul": _ref_mul, "div": _ref_div, "sin": _ref_sin, "exp": _ref_exp}


def reference_backward(self):
    """Topological order over ``parents``, seed 1, every node's ``_backward`` once, consumers first."""
    order, seen = [], set()
    stack = [(self, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node.parents if id(p) not in seen)
    self.grad = 1.0
    for node in reversed(order):
        node._backward()


def _require_class(cls) -> None:
    if not isinstance(cls, type):
        raise AssertionError(f"Value is {cls!r}, not a class: run the cell of 1(d)")


def apply(op: str, operands):
    """The student's operation: ``a + b``, ..., ``a.sin()``."""
    if ARITY[op] == 2:
        return _MATH_OPS[op](operands[0], operands[1])
    return getattr(operands[0], op)()


def rule_problem(cls, op: str) -> str | None:
    """Why the student's ``op`` gives a wrong value or wrong gradients, or None.

    Each case builds the operation on fresh input Values and calls only the result's ``_backward``
    (not ``backward()``), with ``out.grad`` set to 1.7.
    """
    _require_class(cls)
    cases = [(1.3, -0.7), (0.4, 2.5)] if ARITY[op] == 2 else [(0.8,), (-2.1,)]
    for values in cases:
        leaves = [cls(v) for v in values]
        out = apply(op, leaves)
        t = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
        want = _TORCH_OPS[op](*t)
        want.backward(torch.tensor(1.7, dtype=torch.float64))
        shown = f"{op}({', '.join(f'{v:g}' for v in values)})"
        if not isinstance(out, cls):
            raise AssertionError(f"{shown} returned a {type(out).__name__}, not a Value")
        if not close(float(out.data), want.item(), ENGINE_TOL):
            raise AssertionError(f"{shown} has data {float(out.data):.7g}, expected {want.item():.7g}")
        out.grad = 1.7
        out._backward()
        got = [float(leaf.grad) for leaf in leaves]
        expected = [x.grad.item() for x in t]
        if not all(close(a, b, ENGINE_TOL) for a, b in zip(got, expected)):
            names = ("self", "other")[:len(values)]
            return (f"{shown} with out.grad = 1.7: _backward() gives the grads "
                    f"{', '.join(f'{n} {g:.7g}' for n, g in zip(names, got))}, expected "
                    f"{', '.join(f'{n} {g:.7g}' for n, g in zip(names, expected))}")
    return None


def accumulation_problems(cls) -> dict[str, str]:
    """``{op: why}`` for the rules that overwrite grads instead of adding to them.

    Measured against the student's own rule (so that a wrong derivative is not charged here again):
    the rule must add the same amounts to grads that already hold a value, and a Value used as both
    operands (``a * a``) must receive both amounts.  Operations that raise are left out (their own
    check already costs their points); raises when no rule could be run at all.
    """
    _require_class(cls)
    problems, ran = {}, []
    for op in ARITY:
        binary = ARITY[op] == 2
        values = (1.3, 0.6) if binary else (0.7,)
        try:
            leaves = [cls(v) for v in values]
            out = apply(op, leaves)
            out.grad = 1.5
            out._backward()
            amounts = [float(leaf.grad) for leaf in leaves]

            preset = (0.25, -0.5)[:len(values)]
            leaves = [cls(v) for v in values]
            for leaf, g in zip(leaves, preset):
                leaf.grad = g
            out = apply(op, leaves)
            out.grad = 1.5
            out._backward()
            got = [float(leaf.grad) for leaf in leaves]
            if binary:
                same = [cls(1.3), cls(1.3)]
                out = apply(op, same)
                out.grad = 1.5
                out._backward()
                both = float(same[0].grad) + float(same[1].grad)
                a = cls(1.3)
                out = apply(op, [a, a])
                out.grad = 1.5
                out._backward()
                reused = float(a.grad)
        except Exception:  # noqa: BLE001 - a broken operation is charged by its own check
            continue
        ran.append(op)
        expected = [p + g for p, g in zip(preset, amounts)]
        if not all(close(a, b, ENGINE_TOL) for a, b in zip(got, expected)):
            problems[op] = (f"{op}: with grads {', '.join(f'{p:g}' for p in preset)} already in the inputs, "
                            f"_backward() leaves {', '.join(f'{g:.7g}' for g in got)}, expected "
                            f"{', '.join(f'{e:.7g}' for e in expected)} (grad = instead of +=?)")
        elif binary and not close(reused, both, ENGINE_TOL):
            symbol = SYMBOLS[op]
            problems[op] = (f"a {symbol} a: a.grad is {reused:.7g}, expected {both:.7g}, the sum over both uses "
                            f"(grad = instead of +=?)")
    if not ran:
        raise AssertionError("no operation could be built and run its _backward() yet")
    return problems


def summary(problems: dict[str, str]) -> str:
    """The first problem in full, the other operations with the same problem by name."""
    if not problems:
        return ""
    first, *others = problems
    return problems[first] + (f"; the same in {', '.join(others)}" if others else "")


def _diamond(cls, calls: list):
    """A graph whose inner node u is used by three consumers: z = u * sin(u) + u, u = exp(a) * b."""
    def traced(node, name):
        rule = node._backward

        def _backward():
            calls.append(name)
            rule()
        node._backward = _backward
        return node

    a, b = cls(0.3), cls(-1.2)
    e = traced(_ref_exp(a), "e")
    u = traced(_ref_mul(e, b), "u")
    s = traced(_ref_sin(u), "s")
    w = traced(_ref_mul(u, s), "w")
    z = traced(_ref_add(w, u), "z")
    return {"a": a, "b": b, "e": e, "u": u, "s": s, "w": w, "z": z}


def backward_problem(cls) -> str | None:
    """Why the student's ``backward()`` is wrong on a graph built with reference rules, or None."""
    _require_class(cls)
    calls: list[str] = []
    nodes = _diamond(cls, calls)
    nodes["z"].backward()
    ta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-1.2, dtype=torch.float64, requires_grad=True)
    tu = torch.exp(ta) * tb
    (tu * torch.sin(tu) + tu).backward()
    consumers = {"e": ["u"], "u": ["s", "w", "z"], "s": ["w"], "w": ["z"], "z": []}
    if not close(float(nodes["z"].grad), 1.0, ENGINE_TOL):
        return f"after z.backward() z.grad is {float(nodes['z'].grad):.7g}, expected 1 (the seed dz/dz)"
    for name in consumers:
        count = calls.count(name)
        if count != 1:
            return f"the backward rule of an inner node ran {count} times, expected once"
    for name, users in consumers.items():
        late = [u for u in users if calls.index(u) > calls.index(name)]
        if late:
            return (f"a node's backward rule ran before the rules of all the nodes that use it: its grad was not "
                    f"complete yet (order of the rules: {', '.join(calls)}; visit the nodes in reverse "
                    f"topological order)")
    for name, tensor in (("a", ta), ("b", tb)):
        if not close(float(nodes[name].grad), tensor.grad.item(), ENGINE_TOL):
            return f"the input {name} has grad {float(nodes[name].grad):.7g}, expected {tensor.grad.item():.7g}"
    return None


@contextlib.contextmanager
def patched(cls, ops=(), backward: bool = False):
    """Reference versions of the given operations (and of ``backward``) in the student's class, for a while."""
    names = [METHODS[op] for op in ops] + (["backward"] if backward else [])
    saved = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    try:
        for op in ops:
            setattr(cls, METHODS[op], RULES[op])
        if backward:
            cls.backward = reference_backward
        yield
    finally:
        for name in names:
            if name in saved:
                setattr(cls, name, saved[name])
            else:
                delattr(cls, name)


def engine_trace(cls, nodes, x) -> tuple[dict, dict]:
    """``(data, grads)`` of every input and node of a graph built with the student's Value and backward()."""
    values = {name: cls(v) for name, v in x.items()}
    for name, op, args in nodes:
        values[name] = apply(op, [values[a] for a in args])
    values[nodes[-1][0]].backward()
    return ({n: float(v.data) for n, v in values.items()}, {n: float(v.grad) for n, v in values.items()})


def random_graph(seed: int, n_inputs: int = 3, n_nodes: int = 12) -> tuple[list, dict]:
    """A seeded random graph of the six operations with reused nodes and moderate values: ``(nodes, x)``."""
    g = torch.Generator().manual_seed(seed)

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=g))

    x = {}
    for i in range(n_inputs):
        magnitude = 0.4 + 1.1 * torch.rand(1, generator=g, dtype=torch.float64).item()
        x[f"x{i + 1}"] = magnitude if pick(2) else -magnitude
    names, values, nodes = list(x), dict(x), []
    for k in range(n_nodes):
        op = list(ARITY)[pick(len(ARITY))]
        a = names[-1] if pick(2) else names[pick(len(names))]  # often the newest node: long chains
        b = names[pick(len(names))]
        if op == "exp" and abs(values[a]) > 2:
            op = "sin"
        if op == "div" and abs(values[b]) < 0.3:
            op = "mul"
        if op == "mul" and abs(values[a] * values[b]) > 20:
            op = "sub"
        args = (a, b) if ARITY[op] == 2 else (a,)
        name = f"n{k + 1}"
        values[name] = _MATH_OPS[op](*(values[i] for i in args))
        nodes.append((name, op, args))
        names.append(name)
    return nodes, x


def engine_problem(cls, nodes, x, what: str) -> str | None:
    """Why the student's engine disagrees with torch on a graph (data or grads), or None."""
    _require_class(cls)
    data, grads = engine_trace(cls, nodes, x)
    values, adjoints = torch_trace(nodes, x)
    for name in values:
        if not close(data[name], values[name], ENGINE_TOL):
            return f"{name} has data {data[name]:.7g}, torch {values[name]:.7g}, in {what}"
    for name in list(x) + [n for n, _, _ in nodes]:
        if not close(grads[name], adjoints[name], ENGINE_TOL):
            return f"d out/d {name} is {grads[name]:.7g}, torch autograd gives {adjoints[name]:.7g}, in {what}"
    return None

"""exam/4_true_false_quiz: the marking rule at its edges, a key that agrees with the solution and the
mark schemes and is checked by computation where it can be, and feedback that shows counts, never the key."""

from __future__ import annotations

import ast
import html
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coursekit import course, submissions, trial
from coursekit.kernel.quiz import MISSING, tally

from .notebook_cells import SourceNotebook

ROOT = course.ROOT
NOTEBOOK = "4_true_false_quiz"
SOURCE = ROOT / "source" / "exam" / f"{NOTEBOOK}.ipynb"
QUESTIONS = ("a", "b", "c", "d")
ROMAN = ("i", "ii", "iii", "iv", "v", "vi")

QUIZ = SourceNotebook(SOURCE, setup=(), answers=())
source_cells = QUIZ.cells


def hidden_key(q: str) -> dict:
    match = re.search(rf"^_key_4{q} = (\{{[^}}]*\}})", source_cells()[f"quiz_{q}_tests"].source, re.M)
    assert match, f"no _key_4{q} = {{...}} line in the hidden test of 4({q})"
    return ast.literal_eval(match.group(1))


def run_hidden_test(q: str, **namespace) -> tuple[float, str]:
    """Run the hidden test cell of 4(q) on ``namespace`` (the student's variables); return (score, output)."""
    return QUIZ.run_hidden_test(f"quiz_{q}_tests", namespace)


def answers_with(q: str, flip=(), blank=()) -> dict:
    """The key of 4(q) with the statements in ``flip`` answered wrongly and those in ``blank`` unanswered."""
    key = hidden_key(q)
    return {k: None if k in blank else (not v) if k in flip else v for k, v in key.items()}


# -- the key: one place of truth, agreeing everywhere ------------------------------------------------

@pytest.mark.parametrize("q", QUESTIONS)
def test_key_agrees_with_solution_mark_scheme_statements_and_points(q):
    cells = source_cells()
    key = hidden_key(q)
    question = cells[f"quiz_{q}_question"].source
    statements_part, _, scheme = question.partition("BEGIN MARK SCHEME")
    assert re.findall(r"^- \((\w+)\) ", statements_part, re.M) == list(key) == list(ROMAN[:len(key)])
    assert dict(re.findall(r"^\| \((\w+)\) \| \*\*(True|False)\*\* \|", scheme, re.M)) == {
        k: str(v) for k, v in key.items()}, "the mark scheme's table disagrees with the key"
    letters = ", ".join("T" if v else "F" for v in key.values())
    assert f"Key: **{letters}**" in scheme
    assert cells[f"quiz_{q}_tests"].metadata.nbgrader.points == len(key)
    namespace = {}
    exec(submissions.solution_answers(nbformat.read(SOURCE, as_version=4))[f"quiz_{q}_answers"], namespace)
    assert namespace[f"answers_4{q}"] == key, "the solution cell disagrees with the hidden test's key"


def test_key_mixes_true_and_false():
    keys = [hidden_key(q) for q in QUESTIONS]
    assert [len(k) for k in keys] == [5, 5, 6, 6]
    for key in keys:
        assert 2 <= sum(key.values()) <= len(key) - 2, "every question has at least two true and two false statements"


# -- the marking rule at its edges, through the real hidden test cells -------------------------------

@pytest.mark.parametrize("q,flip,blank,expected", [
    ("a", (), (), 5.0),                                   # all right
    ("a", ROMAN[:5], (), 0.0),                            # all wrong: 0, not -2.5
    ("b", (), ROMAN[:5], 0.0),                            # all unanswered
    ("a", ("iii",), ("v",), 2.5),                         # 3 right, 1 wrong, 1 unanswered
    ("b", ("i", "ii"), (), 2.0),                          # 3 right, 2 wrong
    ("c", ("i", "v"), ("iii",), 2.0),                     # 3 right, 2 wrong, 1 unanswered
    ("c", ("i", "ii", "iii", "iv"), (), 0.0),             # 2 right, 4 wrong: exactly 0
    ("c", ("i", "ii", "iii", "iv"), ("vi",), 0.0),        # 1 right, 4 wrong: -1 counts as 0
    ("d", ("vi",), ("ii",), 3.5),                         # 4 right, 1 wrong, 1 unanswered
    ("d", ROMAN[:6], (), 0.0),
])
def test_marking_rule(q, flip, blank, expected):
    score, output = run_hidden_test(q, **{f"answers_4{q}": answers_with(q, flip, blank)})
    n = len(hidden_key(q))
    assert score == expected and type(score) is float
    right, wrong, unanswered = n - len(flip) - len(blank), len(flip), len(blank)
    assert f"{right} right, {wrong} wrong, {unanswered} unanswered" in output
    assert f"4({q}): {expected:g} / {n} points" in output
    # the output names neither statements nor answers: nothing tells which ones were wrong
    assert not re.search(r"\((i|ii|iii|iv|v|vi)\)|True|False", output), output


def test_missing_variable_and_unreadable_answers_count_as_unanswered():
    score, output = run_hidden_test("a")
    assert score == 0.0 and "answers_4a is not defined" in output and "5 unanswered" in output
    score, output = run_hidden_test("b", answers_4b="TFTFF")
    assert score == 0.0 and "not a dict of answers" in output

    class Broken(dict):
        def items(self):
            raise RuntimeError("broken on purpose")

    score, output = run_hidden_test("c", answers_4c=Broken(answers_with("c")))
    assert score == 0.0 and "could not be read" in output and "broken on purpose" in output


def test_lenient_spellings_keys_and_lists():
    key = hidden_key("d")
    spelled = {f"({k.upper()})": ("yes" if v else "no") for k, v in key.items()}
    score, output = run_hidden_test("d", answers_4d=spelled)
    assert score == 6.0 and "read (i)" in output
    score, output = run_hidden_test("d", answers_4d=list(key.values()))
    assert score == 6.0 and "read in the order" in output
    numbers = {k: int(v) for k, v in key.items()}
    assert run_hidden_test("d", answers_4d=numbers)[0] == 6.0
    unclear = {**key, "i": "maybe", "ii": 2, "iii": "None"}
    score, output = run_hidden_test("d", answers_4d=unclear)
    assert score == 3.0 and "not True or False, counted as unanswered: (i) 'maybe', (ii) 2, (iii) 'None'" in output
    extra = {**key, "vii": True}
    score, output = run_hidden_test("d", answers_4d=extra)
    assert score == 6.0 and "unknown keys ignored: 'vii'" in output


def test_two_different_answers_for_one_statement_and_a_neutralized_statement():
    t = tally({"i": True, "ii": False}, {"i": True, "(i)": False, "ii": False}, "answers")
    assert (t.right, t.wrong, t.unanswered) == (1, 0, 1) and "two different answers for (i)" in t.comment()
    t = tally({"i": None, "ii": False}, {"i": False, "ii": False}, "answers")  # (i) neutralized: both right
    assert (t.right, t.wrong, t.unanswered) == (2, 0, 0)
    t = tally({"i": True}, MISSING, "answers")
    assert (t.right, t.wrong, t.unanswered) == (0, 0, 1)


# -- the key checked by computation (float64 autograd and torch's own layers) ------------------------

def _two_layer_network(seed=0, D=4, H=3, K=5, target=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(D, 1, generator=g, dtype=torch.float64)
    W1, b1 = torch.randn(H, D, generator=g, dtype=torch.float64), torch.randn(H, 1, generator=g, dtype=torch.float64)
    W2, b2 = torch.randn(K, H, generator=g, dtype=torch.float64), torch.randn(K, 1, generator=g, dtype=torch.float64)
    for p in (W1, b1, W2, b2):
        p.requires_grad_()
    t = torch.zeros(K, 1, dtype=torch.float64)
    t[target] = 1
    a = W1 @ x + b1
    h = torch.tanh(a)
    z = W2 @ h + b2
    z.retain_grad()
    y = torch.softmax(z, dim=0)
    loss = -(t * torch.log(y)).sum()
    loss.backward()
    return dict(x=x, W1=W1, b1=b1, W2=W2, b2=b2, t=t, h=h.detach(), z=z, y=y.detach())


def _close(a, b):
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def a_i():
    n = _two_layer_network()
    return _close(n["z"].grad, n["y"] - n["t"])


def a_ii():
    n = _two_layer_network()
    return _close(n["W2"].grad, (n["y"] - n["t"]) @ n["h"].T)


def a_iii():
    z = torch.linspace(-1, 2, 5, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), z)
    y = torch.softmax(z, 0)
    return _close(jacobian, torch.diag(y * (1 - y)))


def a_iv():
    n = _two_layer_network()
    delta = (1 - n["h"] * n["h"]) * (n["W2"].detach().T @ (n["y"] - n["t"]))
    return _close(n["W1"].grad, delta @ n["x"].T)


def a_v():
    n = _two_layer_network()
    with_tanh = (1 - n["h"] * n["h"]) * (n["W2"].detach().T @ (n["y"] - n["t"]))
    assert _close(n["b1"].grad, with_tanh)
    return _close(n["b1"].grad, n["W2"].detach().T @ (n["y"] - n["t"]))


def b_i():
    a = torch.linspace(-10, 10, 2001, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(a).sum().backward()
    sigmoid_max = a.grad.max().item()
    positive = torch.linspace(0.01, 10, 100, requires_grad=True)
    torch.relu(positive).sum().backward()
    return abs(sigmoid_max - 0.25) < 1e-12 and bool((positive.grad == 1).all())


def _deep_sigmoid(depth=8, width=16, seed=0, zero=False):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Sigmoid()]
    net = nn.Sequential(*layers, nn.Linear(width, 1)).double()
    if zero:
        for m in net:
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.weight)
    x = torch.randn(32, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    net(x).pow(2).mean().backward()
    linears = [m for m in net if isinstance(m, nn.Linear)]
    return net, linears


def b_ii():
    _, linears = _deep_sigmoid()
    ratios = []
    for lr in (0.01, 10.0):  # the update is lr * gradient in every layer
        first, last = lr * linears[0].weight.grad.norm(), lr * linears[-1].weight.grad.norm()
        ratios.append((first / last).item())
    assert ratios[0] < 0.01, f"the example does not have vanishing gradients (ratio {ratios[0]})"
    return abs(ratios[0] - ratios[1]) > 1e-9 * ratios[0] and ratios[1] > 0.5


def b_iii():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 4)).double()
    with torch.no_grad():
        f[2].weight.mul_(1e-6)  # a residual branch with a tiny Jacobian
    x = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    j_f = torch.autograd.functional.jacobian(f, x)
    j_y = torch.autograd.functional.jacobian(lambda v: v + f(v), x)
    return _close(j_y, torch.eye(4, dtype=torch.float64) + j_f) and j_f.abs().max() < 1e-5


def b_iv():
    p = nn.Parameter(torch.zeros(10))
    p.grad = torch.full((10,), 1e-8)
    before = p.grad.norm().item()
    torch.nn.utils.clip_grad_norm_([p], max_norm=1.0)
    return p.grad.norm().item() > before  # a remedy would have to enlarge small gradients


def b_v():
    _, linears = _deep_sigmoid(zero=True)
    all_but_last = [m.weight.grad for m in linears[:-1]]
    assert all(bool((g == 0).all()) for g in all_but_last), "zero weights should block the gradient"
    return any(bool((g != 0).any()) for g in all_but_last)


def c_i():
    return sum(p.numel() for p in nn.Conv2d(32, 64, kernel_size=3).parameters()) == 18_496


def c_ii():
    torch.manual_seed(0)
    C = 8
    two = nn.Sequential(nn.Conv2d(C, C, 3), nn.ReLU(), nn.Conv2d(C, C, 3)).double()
    one = nn.Conv2d(C, C, 5)
    x = torch.randn(1, C, 11, 11, dtype=torch.float64, requires_grad=True)
    out = two(x)
    out[0, :, 3, 3].sum().backward()  # one output position, all channels
    rows, cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    field = (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    weights_two = sum(m.weight.numel() for m in two if isinstance(m, nn.Conv2d))
    return tuple(int(s) for s in field) == (5, 5) and weights_two == 18 * C * C < one.weight.numel() == 25 * C * C


def c_iii():
    x = torch.tensor([[[[1.0, 4.0], [2.0, 3.0]]]], requires_grad=True)
    F.max_pool2d(x, 2, stride=2).sum().backward()
    return torch.allclose(x.grad, torch.full_like(x, 0.25))


def c_iv():
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    changing = [b for b in blocks if b.conv1.in_channels != b.conv2.out_channels or b.conv1.stride != (1, 1)]
    assert changing and all(b.downsample is not None for b in changing), "projection shortcuts expected"
    return not changing


def c_v():
    logits = torch.linspace(-2, 3, 12, dtype=torch.float64).reshape(3, 4)
    target = torch.tensor([0, 3, 1])
    loss = nn.CrossEntropyLoss()
    on_logits = loss(logits, target)
    assert torch.allclose(on_logits, F.nll_loss(F.log_softmax(logits, 1), target), rtol=1e-12)
    return torch.allclose(loss(torch.softmax(logits, 1), target), on_logits, rtol=1e-6)


def c_vi():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    shapes = {tuple(net(torch.zeros(2, 3, s, s)).shape) for s in (32, 48, 64)}
    return shapes == {(2, 10)}


def d_i():
    D = 6
    encoder, decoder = nn.Linear(D, D), nn.Linear(D, D)  # code as wide as the input
    for m in (encoder, decoder):
        nn.init.eye_(m.weight)
        nn.init.zeros_(m.bias)
    x = torch.randn(20, D, generator=torch.Generator().manual_seed(0))
    reconstruction_error = F.mse_loss(decoder(encoder(x)), x).item()
    return reconstruction_error > 0  # the identity reaches the minimum: nothing forces a useful code


def d_ii():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    weights = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0])
    x_in = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_in), y), x_in)  # w.r.t. the input only
    adversarial = x + 0.05 * grad.sign()
    unchanged = all(torch.equal(w, p) for w, p in zip(weights, model.parameters()))
    return unchanged and F.cross_entropy(model(adversarial), y) > F.cross_entropy(model(x), y)


def d_vi():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    bn(torch.randn(16, 3, 4, 4) * 2 + 1)  # training steps update the running statistics
    image = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    batches = [torch.cat([image, torch.randn(7, 3, 4, 4, generator=torch.Generator().manual_seed(s))]) for s in (6, 7)]
    bn.train()
    in_train = [bn(b)[0] for b in batches]
    assert not torch.allclose(*in_train), "in training mode the other images should matter"
    bn.eval()
    in_eval = [bn(b)[0] for b in batches]
    return torch.allclose(*in_eval, atol=1e-6) and torch.allclose(in_eval[0], bn(image)[0], atol=1e-6)


COMPUTED = {("a", "i"): a_i, ("a", "ii"): a_ii, ("a", "iii"): a_iii, ("a", "iv"): a_iv, ("a", "v"): a_v,
            ("b", "i"): b_i, ("b", "ii"): b_ii, ("b", "iii"): b_iii, ("b", "iv"): b_iv, ("b", "v"): b_v,
            ("c", "i"): c_i, ("c", "ii"): c_ii, ("c", "iii"): c_iii, ("c", "iv"): c_iv, ("c", "v"): c_v,
            ("c", "vi"): c_vi, ("d", "i"): d_i, ("d", "ii"): d_ii, ("d", "vi"): d_vi}
# 4(d)(iii) entropic open-set loss, (iv) horizontal flips of digits and (v) GAN training are definitions:
# the mark scheme gives the reasons.


@pytest.mark.parametrize("q,statement", sorted(COMPUTED), ids=[f"4({q})({s})" for q, s in sorted(COMPUTED)])
def test_key_entry_agrees_with_computation(q, statement):
    assert COMPUTED[(q, statement)]() == hidden_key(q)[statement]


# -- feedback: counts, never the key -----------------------------------------------------------------

@pytest.fixture(scope="module")
def quiz_feedback(tmp_path_factory, offline_env):
    root, scores = trial.grade(tmp_path_factory.mktemp("quiz"), offline_env, only={"exam": [NOTEBOOK]})
    course.nbgrader(root, "generate_feedback", "exam", "--force", env=offline_env)
    return root, scores


def test_known_mistakes_and_solution_grade_as_expected(quiz_feedback):
    _, scores = quiz_feedback
    assert [p for p in trial.problems(scores) if NOTEBOOK in p] == []


def test_feedback_shows_counts_but_not_the_key(quiz_feedback):
    root, _ = quiz_feedback
    pages = {p.parts[-3]: p.read_text() for p in (root / "feedback").glob(f"*/exam/{NOTEBOOK}.html")}
    assert {"solution", "untouched", "quiz_a_mixed", "quiz_b_invalid_values"} <= set(pages)
    scheme_words = ("MARK SCHEME", "Mark scheme", "justification", "Key: ", "Dhamija", "18,432", "_key_4",
                    "BEGIN HIDDEN", "Rubric(", "coursekit", "tally(")
    for student, page in pages.items():
        leaks = [w for w in scheme_words if w in page]
        assert not leaks, f"the feedback of {student} shows {leaks}"
        for q, n in zip(QUESTIONS, (5, 5, 6, 6)):
            assert re.search(rf"4\({q}\): [\d.]+ / {n} points", page), f"{student}: no score line for 4({q})"
        # the summary on top repeats the lines of the questions that lost points; below it each question has one
        body = re.sub(r"Your score:.*?</table>", "", page, count=1, flags=re.S)
        assert body != page, f"{student}: no summary on top"
        assert len(re.findall(r"\d right, \d wrong, \d unanswered", body)) == 4, student
    text = {student: html.unescape(re.sub(r"<[^>]+>", "", page)) for student, page in pages.items()}
    assert "3 right, 1 wrong, 1 unanswered: 3 - 0.5 x 1 = 2.5" in text["quiz_a_mixed"]
    assert "4(a): 2.5 / 5 points" in text["quiz_a_mixed"]
    assert "not True or False, counted as unanswered: (ii) 'maybe', (iv) 2" in text["quiz_b_invalid_values"]
    # the untouched student never typed an answer, so no "i": True of the key may appear in their feedback
    answer = re.compile(r'"(?:i|ii|iii|iv|v|vi)":\s*(?:True|False)')
    assert answer.search(text["solution"]), "the pattern should find the solution's own answers"
    assert not answer.search(text["untouched"]), "the key shows in the feedback"

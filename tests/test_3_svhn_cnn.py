"""exam/3_svhn_cnn: the hidden tests run in-process on the solution and on the slips of the exam graded by hand
(the known mistakes are graded with the real nbgrader commands by the pipeline tests)."""

from __future__ import annotations

import pytest

from coursekit import course

from .notebook_cells import SourceNotebook, lost

SOURCE = course.ROOT / "source" / "exam" / "3_svhn_cnn.ipynb"
NOTEBOOK = SourceNotebook(SOURCE, setup=("svhn_setup",), answers=("svhn_c_loaders", "svhn_d_network", "svhn_e_training"))
POINTS = {"svhn_c_tests": 4, "svhn_d_tests": 5, "svhn_e_tests": 6}


@pytest.fixture(autouse=True)
def grading_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))


def scores(**answers) -> dict[str, tuple[float, str]]:
    namespace = NOTEBOOK.solution(**{k: NOTEBOOK.edited(k, *pairs, once=False) for k, pairs in answers.items()})
    return {tests: NOTEBOOK.run_hidden_test(tests, namespace) for tests in POINTS}


def test_the_solution_earns_every_point():
    got = scores()
    assert {t: s for t, (s, _) in got.items()} == POINTS, got


def test_the_slips_of_the_hand_graded_exam_cost_what_the_human_took():
    """Human: 3(c) 3.5/4 (images upscaled), 3(d) 3.5/5 (no activation -1, FC of the wrong size -0.5),
    3(e) 4.5/6 (wrong loss -0.5, no test accuracy -1)."""
    got = scores(
        svhn_c_loaders=[("        transforms.ToTensor(),", "        transforms.Resize(224),\n        transforms.ToTensor(),")],
        svhn_d_network=[("            nn.ReLU(),\n", ""), ("nn.Linear(128 * 8 * 1, 10)", "nn.Linear(128 * 8 * 8, 10)")],
        svhn_e_training=[("loss_fn = nn.CrossEntropyLoss()", "loss_fn = nn.NLLLoss()"),
                         ('        history["test_acc"].append(evaluate(model, test_loader, device))\n', ""),
                         ("test accuracy {history['test_acc'][-1]:.3f} ", "")])
    assert {t: s for t, (s, _) in got.items()} == {"svhn_c_tests": 3.5, "svhn_d_tests": 3.5, "svhn_e_tests": 4.5}, got


def test_images_that_are_not_normalized_lose_half_a_point():
    got = scores(svhn_c_loaders=[("        transforms.Normalize((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),\n", "")])
    assert got["svhn_c_tests"][0] == 3.5 and "images not normalized" in lost(got["svhn_c_tests"][1])[0]


def test_a_network_whose_forward_raises_is_not_checked_and_says_why():
    got = scores(svhn_d_network=[("return self.classifier(self.features(x))", "return self.classifier(self.feature(x))")])
    score, output = got["svhn_d_tests"]
    assert score == 1, output  # the dropout and batch-norm layers are there: only that line is decided without forward
    assert len(lost(output)) == 4 and all("not checked: your `forward` raised AttributeError" in line
                                          for line in lost(output)), output


def test_average_pooling_instead_of_max_pooling_costs_the_convolution_line():
    got = scores(svhn_d_network=[("nn.MaxPool2d(2)", "nn.AvgPool2d(2)")])
    assert got["svhn_d_tests"][0] == 3.5 and "expected 2x2 max pooling" in lost(got["svhn_d_tests"][1])[0]

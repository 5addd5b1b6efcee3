"""lab/2_mnist_first_network: hidden tests that give full points to other correct answers and keep each further
mistake in its own check, and the solution trained on real MNIST digits (skipped without ../shared/data).
The known mistakes themselves are graded with nbgrader by the pipeline tests."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from coursekit import course
from .conftest import SHARED_DATA, absent
from .notebook_cells import SourceNotebook, lost

ROOT = course.ROOT
SOURCE = ROOT / "source" / "lab" / "2_mnist_first_network.ipynb"
ANSWERS = ("mnist_a_loaders", "mnist_b_network", "mnist_c_training", "mnist_d_evaluate")
REAL_MNIST = SHARED_DATA / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"


NOTEBOOK = SourceNotebook(SOURCE, setup=("mnist_setup",), answers=ANSWERS)
cells, solution, run_hidden_test, edited = NOTEBOOK.cells, NOTEBOOK.solution, NOTEBOOK.run_hidden_test, NOTEBOOK.edited


# -- other correct answers earn full points -----------------------------------------------------------

def test_other_correct_answers_earn_full_points():
    ns = solution(
        mnist_a_loaders='''
def make_mnist_loaders(data_dir, batch_size=100):
    """ToTensor only, keyword arguments, a larger test batch, explicit num_workers."""
    train = torchvision.datasets.MNIST(root=data_dir, train=True, transform=transforms.ToTensor(), download=True)
    test = torchvision.datasets.MNIST(root=data_dir, train=False, transform=transforms.ToTensor(), download=True)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=0),
            DataLoader(test, batch_size=1000, num_workers=0))
''',
        mnist_b_network='''
class MNISTNet(nn.Module):
    """Functional style: named layers, view, F.relu."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
''',
        mnist_c_training='''
def make_loss_and_optimizer(model):
    return F.cross_entropy, torch.optim.Adam(params=model.parameters(), lr=0.001)


def train_one_epoch(model, loader, loss_fn, optimizer, device):
    """Gradients reset after the step with model.zero_grad(), the mean of the batch losses."""
    model.train()
    losses = []
    for x, y in loader:
        out = model(x.to(device))
        loss = loss_fn(out, y.to(device))
        loss.backward()
        optimizer.step()
        model.zero_grad()
        losses.append(loss.item())
    return sum(losses) / len(losses)
''',
        mnist_d_evaluate='''
def evaluate(model, loader, device):
    """All predictions concatenated, inference mode, a mean of booleans."""
    model.eval()
    predictions, targets = [], []
    with torch.inference_mode():
        for x, y in loader:
            predictions.append(model(x.to(device)).argmax(1).cpu())
            targets.append(y)
    return (torch.cat(predictions) == torch.cat(targets)).float().mean().item()
''',
    )
    for grade_id, points in (("mnist_a_tests", 2), ("mnist_b_tests", 2), ("mnist_c_tests", 3), ("mnist_d_tests", 1.5)):
        score, output = run_hidden_test(grade_id, ns)
        assert score == points, output


# -- more mistakes, each costing its own check only ---------------------------------------------------

@pytest.mark.parametrize("grade_id,cell,pairs,score,reason", [
    ("mnist_a_tests", "mnist_a_loaders", [("batch_size=batch_size, shuffle=True)", "batch_size=batch_size)")],
     1.5, "the training data is not shuffled"),
    ("mnist_a_tests", "mnist_a_loaders", [("def make_mnist_loaders(data_dir, batch_size=100):",
                                           "def make_mnist_loaders(data_dir, batch_size=64):")],
     1.5, "gives training batches of 64, expected 100"),
    ("mnist_a_tests", "mnist_a_loaders", [("train=False, download=True", "train=True, download=True")],
     1, "the test loader holds 300 images, 0 of them test images"),
    ("mnist_a_tests", "mnist_a_loaders", [("train=True, download=True", "train=False, download=True")],
     1, "120 of the 120 test images of the fixture are in the training loader's dataset"),
    ("mnist_a_tests", "mnist_a_loaders", [("train=True, download=True", "train=True, download=False"),
                                          ("train=False, download=True", "train=False, download=False")],
     1.5, "Dataset not found"),
    ("mnist_a_tests", "mnist_a_loaders", [("train=True, download=True, transform=transform",
                                           "train=True, download=True"),
                                          ("train=False, download=True, transform=transform",
                                           "train=False, download=True")],
     1.5, "images not converted to tensors"),
    ("mnist_a_tests", "mnist_a_loaders", [("MNIST(data_dir, train=False, download=True,", "MNIST(data_dir, train=False,")],
     1.5, "not both downloaded"),
    ("mnist_b_tests", "mnist_b_network", [("nn.Linear(256, 10),\n", "nn.Linear(256, 10),\n            nn.ReLU(),\n")],
     1.5, "linear -> relu -> linear -> relu -> linear -> relu"),
    ("mnist_b_tests", "mnist_b_network", [("            nn.ReLU(),\n            nn.Linear(512, 256),",
                                           "            nn.Sigmoid(),\n            nn.Linear(512, 256),")],
     1.5, "linear -> sigmoid -> linear -> relu -> linear"),
    ("mnist_b_tests", "mnist_b_network", [("nn.Linear(512, 256),", "nn.Linear(512, 128),"),
                                          ("nn.Linear(256, 10),", "nn.Linear(128, 10),")],
     1, "expected [(784, 512), (512, 256), (256, 10)]"),
    ("mnist_c_tests", "mnist_c_training", [("torch.optim.Adam(model.parameters(), lr=1e-3)",
                                            "torch.optim.SGD(model.parameters(), lr=1e-3)")],
     2.5, "the optimizer is SGD, expected torch.optim.Adam"),
    ("mnist_c_tests", "mnist_c_training", [("lr=1e-3)", "lr=1e-2)")], 2.5, "learning rate 0.01, expected 1e-3"),
    ("mnist_c_tests", "mnist_c_training", [("loss_fn = nn.CrossEntropyLoss()", "loss_fn = nn.NLLLoss()")],
     2.5, "where the cross-entropy is"),
    ("mnist_c_tests", "mnist_c_training", [("return total / count", "return loss.item()")],
     2.5, "the average of the batch losses"),
    ("mnist_c_tests", "mnist_c_training", [("return total / count", "return total")],
     2.5, "the average of the batch losses"),
    ("mnist_c_tests", "mnist_c_training", [("    model.train()\n", "")], 2, "not put in training mode"),
    ("mnist_c_tests", "mnist_c_training", [("        optimizer.zero_grad()\n", ""),
                                           ("        loss.backward()\n", "        loss.backward()\n        optimizer.zero_grad()\n")],
     2, "the gradients are zero or missing at the optimizer step"),
    ("mnist_d_tests", "mnist_d_evaluate", [("return correct / count", "return correct / len(loader)")],
     0.5, "the correct predictions divided by the number of batches"),
    ("mnist_d_tests", "mnist_d_evaluate", [("predictions = model(images.to(device)).argmax(dim=1)",
                                            "predictions = model(images.to(device)).argmax(dim=0)")],
     0, "predictions not counted correctly"),
])
def test_mistake_costs_its_check_only(grade_id, cell, pairs, score, reason):
    got, output = run_hidden_test(grade_id, solution(**{cell: edited(cell, *pairs)}))
    assert got == score, output
    assert lost(output) and reason in lost(output)[0], output


@pytest.mark.parametrize("pairs", [[("    model.eval()\n", "")],
                                   [("    with torch.no_grad():\n        for", "    if True:\n        for")]],
                         ids=["no-model.eval", "no-torch.no_grad"])
def test_omissions_that_change_nothing_here_cost_nothing(pairs):
    """No dropout or batch norm in this network: leaving out eval()/no_grad() changes no result (the mark scheme says so)."""
    got, output = run_hidden_test("mnist_d_tests", solution(mnist_d_evaluate=edited("mnist_d_evaluate", *pairs)))
    assert got == 1.5 and not lost(output), output


def test_mean_of_batch_accuracies_is_named_in_the_deduction():
    code = '''
def evaluate(model, loader, device):
    model.eval()
    accuracies = []
    with torch.no_grad():
        for images, labels in loader:
            accuracies.append((model(images).argmax(1) == labels).float().mean().item())
    return sum(accuracies) / len(accuracies)
'''
    got, output = run_hidden_test("mnist_d_tests", solution(mnist_d_evaluate=code))
    assert got == 0.5 and "the mean of the three batches' accuracies" in output, output


# -- real digits ----------------------------------------------------------------------------------------

@pytest.mark.skipif(absent(REAL_MNIST), reason="the real MNIST test set (../shared/data/mnist) is not here")
def test_solution_learns_real_digits(tmp_path):
    """8,000 of the real MNIST test digits for training, the other 2,000 for testing, 10 epochs on the CPU
    (measured: training accuracy 0.9999, test accuracy 0.955, about 10 s with one thread)."""
    spec = importlib.util.spec_from_file_location("mnist_real_digits", ROOT / "benchmarks" / "mnist_real_digits.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    with contextlib.redirect_stdout(io.StringIO()):
        result = benchmark.main(["--threads", "1", "--json", str(tmp_path / "result.json")])
    assert (result["train_images"], result["test_images"], result["epochs"]) == (8000, 2000, 10)
    assert result["test_acc"] > 0.93, result
    assert result["train_acc"] > 0.98 and result["train_acc"] >= result["test_acc"], result
    losses = [e["train_loss"] for e in result["per_epoch"]]
    assert losses[-1] < losses[0] / 10, losses
    assert (tmp_path / "result.json").exists()

"""exam/2_elman_gender: the hidden tests accept every sensible solution the questions allow (nn.RNN or a
hand-written recurrence, padding in front or after the name, one output with binary cross-entropy or two
with cross-entropy, other target forms) and reject wrong ones; the notebook reads the real UCI file and its
solution learns from it (skipped when ../shared/data is absent)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import zipfile

import matplotlib
import nbformat
import pytest

from coursekit import course, submissions
from coursekit.kernel import fixtures

from .conftest import SHARED_DATA, absent
from .notebook_cells import SourceNotebook

matplotlib.use("Agg")

ROOT = course.ROOT
SOURCE = ROOT / "source" / "exam" / "2_elman_gender.ipynb"
REAL_CSV = SHARED_DATA / "gender_by_name" / "name_gender_dataset.csv"


NOTEBOOK = SourceNotebook(SOURCE, setup=("elman_setup",),
                          answers=("elman_c_encoding", "elman_d_dataset", "elman_e_network", "elman_f_training"))
cells, solution_namespace = NOTEBOOK.cells, NOTEBOOK.solution


def hidden_score(task: str, namespace: dict) -> tuple[float, str]:
    """Run the hidden test cell of 2(task) in ``namespace``; return (score, printed rubric lines)."""
    return NOTEBOOK.run_hidden_test(f"elman_{task}_tests", namespace)


# -- other sensible solutions earn full points ---------------------------------------------------------------

ENCODING_DICT_NUMPY = '''
import numpy as np
ALPHABET = "-abcdefghijklmnopqrstuvwxyz"
D = len(ALPHABET)
ONE_HOT = {char: np.eye(D, dtype=np.float32)[i] for i, char in enumerate(ALPHABET)}


def encode_name(name):
    return np.stack([ONE_HOT[char] for char in name])
'''

DATASET_BACK_LAZY_INT = '''
class NameDataset(Dataset):
    def __init__(self, names, genders, max_len):
        self.names, self.genders, self.max_len = list(names), list(genders), max_len

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        name = self.names[index]
        x = torch.zeros(self.max_len, D)
        x[:len(name)] = torch.as_tensor(encode_name(name), dtype=torch.float32)
        return x, int(self.genders[index] == "M")
'''

DATASET_FRONT_COLUMN_TARGETS = '''
class NameDataset(Dataset):
    def __init__(self, names, genders, max_len):
        self.x = torch.stack([torch.cat([torch.zeros(max_len - len(n), D), encode_name(n)]) for n in names])
        self.t = torch.tensor([[1.0] if g == "F" else [0.0] for g in genders])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.t[index]
'''

RNN_AT_END = '''
class ElmanNet(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        outputs, _ = self.rnn(x)
        return self.out(outputs[:, -1])
'''

RNN_AT_LAST_CHARACTER = '''
class ElmanNet(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity="relu", batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        outputs, _ = self.rnn(x)
        lengths = (x.abs().sum(dim=2) > 0).sum(dim=1).clamp(min=1)
        return self.out(outputs[torch.arange(len(x)), lengths - 1])
'''

RNN_PACKED = '''
class ElmanNet(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        lengths = (x.abs().sum(dim=2) > 0).sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return self.out(h[-1])
'''

HANDWRITTEN_CONCAT_MASKED = '''
class ElmanNet(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.cell = nn.Linear(input_size + hidden_size, hidden_size)     # [W1 Wr] on [x_s; h_(s-1)]
        self.W2 = nn.Parameter(0.3 * torch.randn(hidden_size, output_size))  # stored H x O

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.hidden_size)
        for s in range(x.shape[1]):
            new = torch.sigmoid(self.cell(torch.cat([x[:, s], h], dim=1)))
            h = torch.where(x[:, s].abs().sum(dim=1, keepdim=True) > 0, new, h)  # padding leaves h unchanged
        return h @ self.W2
'''

TRAIN_TWO_OUTPUTS = '''
def train_elman(names, genders, epochs=5, hidden_size=64, batch_size=128, lr=3e-3, device=DEVICE):
    data = NameDataset(names, genders, max(len(n) for n in names))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    model = ElmanNet(D, hidden_size, 2).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    accuracies = []
    for epoch in range(epochs):
        model.train()
        correct = 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            z = model(x)
            loss_fn(z, y).backward()
            optimizer.step()
            correct += (z.argmax(dim=1) == y).sum().item()
        accuracies.append(correct / len(data))
    return model, accuracies
'''

TRAIN_SIGMOID_BCE_EVAL_PASS = '''
def train_elman(names, genders, epochs=5, hidden_size=64, batch_size=128, lr=3e-3, device=DEVICE):
    data = NameDataset(names, genders, max_len=max(map(len, names)))
    model = ElmanNet(input_size=D, hidden_size=hidden_size, output_size=1).to(device)
    loss_fn = nn.BCELoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=lr)
    accuracies = []
    for epoch in range(epochs):
        model.train()
        for x, y in DataLoader(data, batch_size=batch_size, shuffle=True):
            optimizer.zero_grad()
            loss = loss_fn(torch.sigmoid(model(x.to(device))), y.to(device))
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in DataLoader(data, batch_size=256):
                correct += ((torch.sigmoid(model(x.to(device))) > 0.5).float() == y.to(device)).sum().item()
        accuracies.append(correct / len(data))
    return model, accuracies
'''


@pytest.mark.parametrize("answers,full", [
    pytest.param({"elman_c_encoding": ENCODING_DICT_NUMPY}, {"c": 3, "d": 5, "e": 6, "f": 5}, id="dict-numpy-encoding"),
    pytest.param({"elman_e_network": RNN_AT_END}, {"e": 6, "f": 5}, id="nn.RNN-front-padding"),
    pytest.param({"elman_d_dataset": DATASET_BACK_LAZY_INT, "elman_e_network": RNN_AT_LAST_CHARACTER,
                  "elman_f_training": TRAIN_TWO_OUTPUTS}, {"d": 5, "e": 6, "f": 5}, id="back-padding-gather-CE"),
    pytest.param({"elman_d_dataset": DATASET_BACK_LAZY_INT, "elman_e_network": RNN_PACKED,
                  "elman_f_training": TRAIN_TWO_OUTPUTS}, {"d": 5, "e": 6, "f": 5}, id="back-padding-packed"),
    pytest.param({"elman_d_dataset": DATASET_BACK_LAZY_INT, "elman_e_network": HANDWRITTEN_CONCAT_MASKED},
                 {"d": 5, "e": 6}, id="back-padding-masked-handwritten"),
    pytest.param({"elman_d_dataset": DATASET_FRONT_COLUMN_TARGETS, "elman_f_training": TRAIN_SIGMOID_BCE_EVAL_PASS},
                 {"d": 5, "e": 6, "f": 5}, id="column-targets-sigmoid-BCELoss"),
])
def test_other_sensible_solutions_earn_full_points(answers, full):
    namespace = solution_namespace(**answers)
    for task, points in full.items():
        score, lines = hidden_score(task, namespace)
        assert score == points, f"2({task}): {score} of {points}\n{lines}"


# -- wrong solutions lose the points of their mistake ----------------------------------------------------------

RNN_NOT_BATCH_FIRST = RNN_AT_END.replace("batch_first=True", "batch_first=False")
NO_NONLINEARITY = '''
class ElmanNet(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.W1 = nn.Linear(input_size, hidden_size)
        self.Wr = nn.Linear(hidden_size, hidden_size, bias=False)
        self.W2 = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.hidden_size)
        for s in range(x.shape[1]):
            h = self.W1(x[:, s]) + self.Wr(h)
        return self.W2(h)
'''
LAST_CHARACTER_ONLY = NO_NONLINEARITY.replace('''        h = x.new_zeros(x.shape[0], self.hidden_size)
        for s in range(x.shape[1]):
            h = self.W1(x[:, s]) + self.Wr(h)''', '''        h = torch.tanh(self.W1(x[:, -1]))''')
PADDED_WITH_A = DATASET_FRONT_COLUMN_TARGETS.replace("torch.zeros(max_len - len(n), D)", "encode_name('a' * (max_len - len(n)))")
REVERSED_NAMES = DATASET_FRONT_COLUMN_TARGETS.replace("encode_name(n)]", "encode_name(n[::-1])]")
INTEGER_SEQUENCES = DATASET_FRONT_COLUMN_TARGETS.replace("for n in names])", "for n in names]).long()")
SOLUTION_TRAIN = submissions.solution_answers(nbformat.read(SOURCE, as_version=4))["elman_f_training"]
ENCODING_NOT_RETURNED = submissions.solution_answers(nbformat.read(SOURCE, as_version=4))["elman_c_encoding"].replace(
    "    return x", "")


@pytest.mark.parametrize("answers,task,expected", [
    pytest.param({"elman_e_network": RNN_NOT_BATCH_FIRST}, "e", 3, id="nn.RNN-without-batch_first"),
    pytest.param({"elman_e_network": NO_NONLINEARITY}, "e", 4, id="no-activation-function"),
    pytest.param({"elman_e_network": LAST_CHARACTER_ONLY}, "e", 4, id="no-recurrence"),
    pytest.param({"elman_d_dataset": DATASET_BACK_LAZY_INT}, "e", 5, id="back-padding-read-after-it"),
    pytest.param({"elman_d_dataset": PADDED_WITH_A}, "d", 4, id="padded-with-the-letter-a"),
    pytest.param({"elman_d_dataset": INTEGER_SEQUENCES}, "d", 3, id="integer-sequences"),
    pytest.param({"elman_d_dataset": REVERSED_NAMES}, "d", 3, id="names-reversed"),
    pytest.param({"elman_f_training": SOLUTION_TRAIN.replace("correct / len(dataset)", "100 * correct / len(dataset)")},
                 "f", 4.5, id="accuracy-in-percent"),
    pytest.param({"elman_f_training": SOLUTION_TRAIN.replace("nn.BCEWithLogitsLoss()", "nn.MSELoss()")},
                 "f", 4.5, id="mean-squared-error"),
    pytest.param({"elman_f_training": SOLUTION_TRAIN.replace("NameDataset(names, genders,", "NameDataset(genders, names,")},
                 "f", 4.5, id="names-and-genders-swapped"),
    pytest.param({"elman_f_training": SOLUTION_TRAIN.replace("            optimizer.step()\n", "")},
                 "f", 3.5, id="no-optimizer-step"),
    pytest.param({"elman_f_training": SOLUTION_TRAIN.replace("shuffle=True", "shuffle=False")},
                 "f", 4.5, id="not-shuffled"),
    pytest.param({"elman_f_training": SOLUTION_TRAIN.replace("(z > 0).float()", "(z > 1).float()")},
                 "f", 4.5, id="wrong-decision-threshold"),
    pytest.param({"elman_c_encoding": ENCODING_NOT_RETURNED}, "c", 2.5, id="encoding-not-returned"),
    pytest.param({"elman_c_encoding": ENCODING_NOT_RETURNED.replace('"abcdefghijklmnopqrstuvwxyz-"',
                                                                    '"abcdefghijklmnopqrstuvwxyz"')},
                 "c", 2, id="wrong-D-and-not-returned"),
])
def test_wrong_solutions_lose_their_points(answers, task, expected):
    score, lines = hidden_score(task, solution_namespace(**answers))
    assert score == expected, f"2({task}): {score}, expected {expected}\n{lines}"


def test_an_undefined_name_costs_only_the_line_that_checks_it():
    """A training function that uses a number of outputs K it never defines: a human takes 0.5 ("no defined
    number of outputs") and grades the rest; so does the rubric, retrying with K = None."""
    undefined = SOLUTION_TRAIN.replace("ElmanNet(D, hidden_size, 1)", "ElmanNet(D, hidden_size, K)")
    score, lines = hidden_score("f", solution_namespace(elman_f_training=undefined))
    assert score == 4.5, lines
    lost = [line for line in lines.splitlines() if "\u2718" in line]
    assert len(lost) == 1 and "no defined number of outputs" in lost[0] and "K, which is not defined" in lost[0]
    assert "K = None (your `train_elman` uses K, which is not defined)" in lines  # named on the lines it helped


def test_several_slips_in_one_training_function_cost_half_a_point_each():
    slips = (SOLUTION_TRAIN.replace("ElmanNet(D, hidden_size, 1)", "ElmanNet(D, hidden_size, K)")
             .replace("max_len=max(len(name) for name in names)", "max_len=len(names)")
             .replace("correct / len(dataset)", "correct / len(loader)"))
    score, lines = hidden_score("f", solution_namespace(elman_f_training=slips))
    assert score == 3.5, lines


def test_a_crash_in_the_training_function_says_so_first():
    crashing = SOLUTION_TRAIN.replace("optimizer.step()", "optimizer.stpe()")
    score, lines = hidden_score("f", solution_namespace(elman_f_training=crashing))
    lost = [line for line in lines.splitlines() if "\u2718" in line]
    assert score == 0 and lost
    assert all("not checked: your `train_elman` raised AttributeError" in line for line in lost), lines


def test_a_broken_dataset_or_network_does_not_cost_the_training_points():
    broken = {"elman_d_dataset": "class NameDataset(Dataset):\n    pass\n",
              "elman_e_network": "class ElmanNet(nn.Module):\n    pass\n"}
    score, lines = hidden_score("f", solution_namespace(**broken))
    assert score == 5, lines


# -- the data cell ------------------------------------------------------------------------------------------------

def data_functions() -> dict:
    """The setup cell and the definitions of the data cell (not its loading lines)."""
    namespace = solution_namespace()
    definitions = cells()["elman_data"].source.split("\nnames, genders = read_names(")[0]
    exec(compile(definitions, "elman_data", "exec"), namespace)
    return namespace


def test_the_data_cell_downloads_and_unzips_only_when_the_csv_is_missing(tmp_path, monkeypatch):
    ns = data_functions()
    served = tmp_path / "served"
    fixtures.write_gender_csv(served / "name_gender_dataset.csv", n=50)
    with zipfile.ZipFile(served / "gender+by+name.zip", "w") as zipped:
        zipped.write(served / "name_gender_dataset.csv", "name_gender_dataset.csv")
    downloads = []

    def fake_urlretrieve(url, filename):
        downloads.append(url)
        shutil.copy(served / "gender+by+name.zip", filename)

    monkeypatch.setattr(ns["urllib"].request, "urlretrieve", fake_urlretrieve)
    data_dir = tmp_path / "data"
    path = ns["download_names"](str(data_dir))
    assert downloads == ["https://archive.ics.uci.edu/static/public/591/gender+by+name.zip"]
    assert open(path, "rb").read() == (served / "name_gender_dataset.csv").read_bytes()
    assert sorted(p.name for p in data_dir.iterdir()) == ["name_gender_dataset.csv"]
    assert ns["download_names"](str(data_dir)) == path and len(downloads) == 1, "downloaded although the CSV is there"

    names, genders = ns["read_names"](path)
    assert len(names) == 50 and names == sorted(names) and set(genders) == {"F", "M"}
    assert all(name == name.lower() for name in names) and not any("\ufeff" in name for name in names)


def test_read_names_takes_the_majority_by_count_and_drops_ties_and_other_characters(tmp_path):
    rows = ["Name,Gender,Count,Probability", "Alex,M,30,0.3", "Alex,F,20,0.2", "Kim,F,5,0.05", "Kim,M,5,0.05",
            "Zoà,F,7,0.07", "Anne-Marie,F,9,0.09", "ANNE-MARIE,M,1,0.01", "\"Lee, Jr\",M,3,0.03"]
    path = tmp_path / "name_gender_dataset.csv"
    path.write_bytes("\r\n".join(rows).encode("utf-8-sig"))
    names, genders = data_functions()["read_names"](str(path))
    assert list(zip(names, genders)) == [("alex", "M"), ("anne-marie", "F")]


# -- the real data (skipped when ../shared/data is absent) ------------------------------------------------------

needs_real_data = pytest.mark.skipif(absent(REAL_CSV), reason="the real CSV in ../shared/data is absent")


def read_real_names(monkeypatch) -> dict:
    """Run the notebook's setup and data cells on the real CSV (not in grading mode)."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(REAL_CSV.parent))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    namespace = solution_namespace()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(cells()["elman_data"].source, "elman_data", "exec"), namespace)
    return namespace


@needs_real_data
def test_the_notebook_reads_the_real_csv(monkeypatch):
    ns = read_real_names(monkeypatch)
    names, genders = ns["names"], ns["genders"]
    # 133,910 distinct names; 405 with as many girls as boys and 512 with other characters are left out
    assert len(names) == len(set(names)) == 132_993
    assert genders.count("F") == 82_628 and names[0] == "a-jay"
    assert genders[names.index("james")] == "M" and genders[names.index("mary")] == "F"
    assert all(set(name) <= set("abcdefghijklmnopqrstuvwxyz-") for name in names)
    assert len(ns["train_names"]) == 119_693 and len(ns["test_names"]) == 13_300


@needs_real_data
def test_the_solution_learns_from_real_names(monkeypatch):
    """A quick check on 20,000 real names; ELMAN_FULL=1 trains on the whole training split (5 epochs, minutes)."""
    ns = read_real_names(monkeypatch)
    full = os.environ.get("ELMAN_FULL") == "1"
    train_names, train_genders = ns["train_names"], ns["train_genders"]
    if not full:
        train_names, train_genders = train_names[:20_000], train_genders[:20_000]
    torch = ns["torch"]
    torch.manual_seed(0)
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()) as log:
        model, accuracies = ns["train_elman"](train_names, train_genders, epochs=5 if full else 2, device="cpu")
    seconds = time.time() - start
    test_set = ns["NameDataset"](ns["test_names"], ns["test_genders"], 25)
    model.eval()
    with torch.no_grad():
        z = model(test_set.x).squeeze(1)
    held_out = ((z > 0).float() == test_set.targets).float().mean().item()
    majority = max(ns["test_genders"].count("F"), ns["test_genders"].count("M")) / len(ns["test_genders"])
    print(log.getvalue() + f"{len(train_names)} names, {seconds:.0f} s: training accuracy {accuracies[-1]:.3f}, "
          f"held-out {held_out:.3f}, majority class {majority:.3f}")
    assert held_out > majority + 0.1, f"held-out accuracy {held_out:.3f}, majority class {majority:.3f}"

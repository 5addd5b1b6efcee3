"""lab/3_vgg16_cifar10: the reference VGG-16 of the hidden tests, hidden tests that keep each deduction in its
own check for mistakes beyond the known ones (and give full points to other correct answers), and the
epoch benchmark.  The known mistakes themselves are graded with nbgrader by the pipeline tests."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from torchvision.models.vgg import cfgs, make_layers

from coursekit import course

from .notebook_cells import SourceNotebook, lost

ROOT = course.ROOT
SOURCE = ROOT / "source" / "lab" / "3_vgg16_cifar10.ipynb"
ANSWERS = ("vgg_a_stats", "vgg_b_datasets", "vgg_c_network", "vgg_d_training", "vgg_e_network")


NOTEBOOK = SourceNotebook(SOURCE, setup=("vgg_setup",), answers=ANSWERS)
cells, solution, run_hidden_test = NOTEBOOK.cells, NOTEBOOK.solution, NOTEBOOK.run_hidden_test


def edited(grade_id: str, *pairs) -> str:
    """The solution of ``grade_id`` with exact text replacements (each must occur)."""
    return NOTEBOOK.edited(grade_id, *pairs, once=False)


# -- the reference ------------------------------------------------------------------------------------

def test_reference_parameter_count_by_hand_and_in_the_solution():
    by_hand, channels = 0, 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v != "M":
            by_hand += 3 * 3 * channels * v + v  # weights and biases
            channels = v
    by_hand += (512 * 512 + 512) * 2 + 512 * 10 + 10
    assert by_hand == 15_245_130
    reference = sum(p.numel() for p in make_layers(cfgs["D"]).parameters()) + 530_442
    assert reference == by_hand
    ns = solution()
    assert sum(p.numel() for p in ns["VGG16"]().parameters()) == by_hand
    score, output = run_hidden_test("vgg_c_tests", ns)
    assert score == 3.0 and "530,442 parameters in the fully connected layers" in output


# -- other correct answers earn full points -----------------------------------------------------------

def test_other_correct_answers_earn_full_points():
    ns = solution(
        vgg_a_stats='''
def channel_stats(dataset, batch_size=1000):
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))  # unbiased: a negligible difference
''',
        vgg_b_datasets='''
def make_cifar10_datasets(data_dir):
    raw = torchvision.datasets.CIFAR10(root=data_dir, train=True, download=True)
    data = raw.data / 255.0  # statistics from the uint8 array instead of channel_stats
    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean(axis=(0, 1, 2)), data.std(axis=(0, 1, 2)))])
    return (torchvision.datasets.CIFAR10(data_dir, train=True, download=True, transform=t),
            torchvision.datasets.CIFAR10(data_dir, train=False, download=True, transform=t))
''',
        vgg_c_network='''
class VGG16(nn.Module):
    """Functional style: a config loop, padding="same", torch.relu, view."""
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self):
        super().__init__()
        self.convs, c = nn.ModuleList(), 3
        for v in self.CFG:
            if v != "M":
                self.convs.append(nn.Conv2d(c, v, 3, padding="same"))
                c = v
        self.fc1, self.fc2, self.fc3 = nn.Linear(512, 512), nn.Linear(512, 512), nn.Linear(512, 10)

    def forward(self, x):
        convs = iter(self.convs)
        for v in self.CFG:
            x = F.max_pool2d(x, 2) if v == "M" else torch.relu(next(convs)(x))
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
''',
        vgg_e_network='''
class VGG16BN(nn.Module):
    """Batch norm after the ReLU, dropout modules inside an nn.Sequential classifier."""

    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(v)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(p=0.5), nn.Linear(512, 10))

    def forward(self, x):
        return self.classifier(self.features(x))
''',
    )
    for grade_id, points in (("vgg_a_tests", 2), ("vgg_b_tests", 2), ("vgg_c_tests", 3), ("vgg_e_tests", 3)):
        score, output = run_hidden_test(grade_id, ns)
        assert score == points, output


# -- more mistakes, each costing its own check only ---------------------------------------------------

@pytest.mark.parametrize("grade_id,cell,pairs,score,reason", [
    ("vgg_c_tests", "vgg_c_network",
     [("            nn.MaxPool2d(2),\n        )", "        )"), ("nn.Linear(512 * 1 * 1, 512)", "nn.Linear(512 * 2 * 2, 512)")],
     2, "convolutions or pooling not as in VGG-16"),
    ("vgg_c_tests", "vgg_c_network", [("nn.MaxPool2d(2)", "nn.AvgPool2d(2)")], 2, "expected 2x2 max pooling"),
    ("vgg_c_tests", "vgg_c_network", [("kernel_size=3, padding=1)", "kernel_size=3, padding=1, bias=False)")],
     2, "expected 14,714,688 (with biases)"),
    ("vgg_c_tests", "vgg_c_network", [("nn.Linear(512, 10),", "nn.Linear(512, 10), nn.Softmax(dim=1),")],
     2, "forward applies a softmax"),
    ("vgg_e_tests", "vgg_e_network", [("nn.BatchNorm2d(v)", "nn.BatchNorm2d(v, track_running_stats=False)")],
     2, "uses the batch statistics instead of its running averages"),
    ("vgg_e_tests", "vgg_e_network", [("nn.BatchNorm2d(v), ", "")],
     2, "no batch normalization after convolution 1, 2,"),
    ("vgg_e_tests", "vgg_e_network", [("return self.fc3(x)", "return self.dropout(self.fc3(x))")],
     2, "dropout applied to the output scores"),
    ("vgg_e_tests", "vgg_e_network", [("nn.Dropout(0.5)", "nn.Dropout(0.2)")],
     2, "with p = [0.2], expected 0.5"),
    ("vgg_d_tests", "vgg_d_training", [("torch.optim.Adam(", "torch.optim.AdamW(")],
     2.5, "the optimizer is AdamW, expected torch.optim.Adam"),
    ("vgg_d_tests", "vgg_d_training", [("    model.train()\n", "")],
     2.5, "not put in training mode"),
])
def test_mistake_costs_its_check_only(grade_id, cell, pairs, score, reason):
    got, output = run_hidden_test(grade_id, solution(**{cell: edited(cell, *pairs)}))
    assert got == score, output
    assert len(lost(output)) == 1 and reason in lost(output)[0], output


MISSING_BLOCK = [  # the fifth block left out: 10 convolutions, a 2x2 map, the first fully connected layer resized to fit
    ("""            # block 5: -> 512 x 1 x 1
            nn.Conv2d(512, 512, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(512, 512, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(512, 512, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
""", ""), ("nn.Linear(512 * 1 * 1, 512)", "nn.Linear(512 * 2 * 2, 512)")]
MISSING_BLOCK_BN = [('"M", 512, 512, 512, "M", 512, 512, 512, "M")', '"M", 512, 512, 512, "M")'),
                    ("self.fc1 = nn.Linear(512, 512)", "self.fc1 = nn.Linear(512 * 2 * 2, 512)")]


def test_a_missing_block_is_charged_once():
    """The block left out in VGG16 and, consistently, in VGG16BN: 3(c) loses the convolution line only, and the
    bonus is graded on the network that is there (every convolution has its batch norm)."""
    ns = solution(vgg_c_network=edited("vgg_c_network", *MISSING_BLOCK), vgg_e_network=edited("vgg_e_network", *MISSING_BLOCK_BN))
    score, output = run_hidden_test("vgg_c_tests", ns)
    assert score == 2 and len(lost(output)) == 1 and "filters per convolution" in lost(output)[0], output
    score, output = run_hidden_test("vgg_e_tests", ns)
    assert score == 3, output


def test_statistics_averaged_over_batches_lose_half_a_point():
    """Standard deviations averaged over batches: right when all images fit in one batch, off when they do not."""
    averaged = """def channel_stats(dataset, batch_size=1000):
    means, stds = [], []
    for images, _ in DataLoader(dataset, batch_size=batch_size):
        means.append(images.mean(dim=(0, 2, 3)))
        stds.append(images.std(dim=(0, 2, 3), unbiased=False))
    return torch.stack(means).mean(dim=0), torch.stack(stds).mean(dim=0)
"""
    score, output = run_hidden_test("vgg_a_tests", solution(vgg_a_stats=averaged))
    assert score == 1.5 and len(lost(output)) == 1 and "statistics depend on the batches" in lost(output)[0], output


# -- the benchmark ------------------------------------------------------------------------------------

def test_epoch_benchmark_runs_the_solution_on_a_few_images(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("vgg16_epoch", ROOT / "benchmarks" / "vgg16_epoch.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = benchmark.main(["--images", "40", "--batch-size", "16", "--workers", "0", "--device", "cpu",
                                 "--json", str(tmp_path / "result.json")])
    assert result["images"] == 40 and result["batches"] == 3
    assert result["epoch_s"] > 0 and 0 <= result["epoch_data_wait_share"] <= 1
    assert result["bottleneck"] in ("data loading", "compute (the model on the device)")
    assert re.search(r"epoch \(train_one_epoch on the DataLoader\): +[\d.]+ s +[\d.]+ images/s", out.getvalue())
    assert (tmp_path / "result.json").exists()

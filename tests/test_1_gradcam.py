"""exam/1_gradcam: the hidden tests give full points to other correct answers (a forward hook, nn.Sequential,
the ImageNet centre crop, backward with retain_grad, min-max normalization, numpy or uint8 results, other
interpolations) and keep each wrong answer beyond the known mistakes in its own check; the reference cases of
the hidden tests stay informative; the photo cell downloads once and falls back; Grad-CAM on the real photos
in ../shared/data (skipped when absent).  The known mistakes themselves are graded with nbgrader by the
pipeline tests."""

from __future__ import annotations

import contextlib
import io
import os
import urllib.error

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from coursekit import course
from coursekit.kernel import fixtures

from .conftest import SHARED_DATA, absent
from .notebook_cells import SourceNotebook, lost

matplotlib.use("Agg")

ROOT = course.ROOT
SOURCE = ROOT / "source" / "exam" / "1_gradcam.ipynb"
ANSWERS = ("gradcam_c_model", "gradcam_d_preprocess", "gradcam_e_grad_cam")
PHOTOS = SHARED_DATA / "photos"
needs_photos = pytest.mark.skipif(absent(PHOTOS / "lion.jpg"), reason="the photos in ../shared/data are absent")


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """Random ResNet-18 weights where torchvision caches the ImageNet ones."""
    home = tmp_path_factory.mktemp("torch")
    fixtures.write_resnet18_weights(home)
    return str(home)


@pytest.fixture(autouse=True)
def grading_environment(monkeypatch, torch_home, tmp_path):
    monkeypatch.setenv("TORCH_HOME", torch_home)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")


NOTEBOOK = SourceNotebook(SOURCE, setup=("gradcam_setup",), answers=ANSWERS)
cells, solution, run_hidden_test, edited = NOTEBOOK.cells, NOTEBOOK.solution, NOTEBOOK.run_hidden_test, NOTEBOOK.edited


FORWARD = """        net = self.resnet
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        features = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        logits = net.fc(torch.flatten(net.avgpool(features), 1))
        return logits, features"""
ORIGINAL = 'original = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)'
APPLY_BODY = """    original = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)  # (H, W, 3)
    height, width = original.shape[:2]
    cam = torch.as_tensor(cam, dtype=torch.float32).cpu()
    resized = F.interpolate(cam[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return (original * resized[:, :, None]).numpy()"""

# -- other correct answers earn full points ------------------------------------------------------------------

CORRECT = {
    "forward hook on layer4": ("gradcam_c_model", (FORWARD, """        store = {}
        handle = self.resnet.layer4.register_forward_hook(lambda module, args, out: store.update(a=out))
        logits = self.resnet(x)
        handle.remove()
        return logits, store["a"]""")),
    "nn.Sequential of the children": ("gradcam_c_model", (FORWARD, """        body = nn.Sequential(*list(self.resnet.children())[:-2])
        features = body(x)
        return self.resnet.fc(features.mean(dim=(2, 3))), features""")),
    "resize 256 and crop 224 as in ImageNet evaluation": ("gradcam_d_preprocess", (
        "transforms.Resize((224, 224)),", "transforms.Resize(256), transforms.CenterCrop(224),")),
    "the weights' own transforms": ("gradcam_d_preprocess", (
        'return transform(image.convert("RGB")).unsqueeze(0)',
        'return ResNet18_Weights.IMAGENET1K_V1.transforms()(image.convert("RGB")).unsqueeze(0)')),
    "sum instead of mean over the positions": ("gradcam_e_grad_cam", (
        "alpha = gradient.mean(dim=(2, 3), keepdim=True)", "alpha = gradient.sum(dim=(2, 3), keepdim=True)")),
    "backward with retain_grad": ("gradcam_e_grad_cam", (
        "gradient, = torch.autograd.grad(logits[0, class_idx], features)",
        "features.retain_grad()\n    model.zero_grad()\n    logits[0, class_idx].backward()\n    gradient = features.grad")),
    "min-max normalization after the ReLU": ("gradcam_e_grad_cam", (
        "    cam = cam / cam.max().clamp(min=1e-12)\n", "    cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-12)\n")),
    "a numpy map": ("gradcam_e_grad_cam", ("return cam.detach().float().cpu()", "return cam.detach().cpu().numpy()")),
    "a map still in the graph": ("gradcam_e_grad_cam", ("return cam.detach().float().cpu()", "return cam.cpu()")),
    "nearest-neighbour resizing": ("gradcam_e_grad_cam", ('mode="bilinear", align_corners=False', 'mode="nearest"')),
    "bicubic resizing": ("gradcam_e_grad_cam", ('mode="bilinear", align_corners=False', 'mode="bicubic", align_corners=False')),
    "align_corners=True": ("gradcam_e_grad_cam", ("align_corners=False", "align_corners=True")),
    "PIL resizing and a uint8 image": ("gradcam_e_grad_cam", (APPLY_BODY, """    up = Image.fromarray(np.asarray(cam, dtype=np.float32)).resize(image.size, Image.BILINEAR)
    return (np.asarray(image) * np.asarray(up)[:, :, None]).astype(np.uint8)""")),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_earn_full_points(name):
    grade_id, pair = CORRECT[name]
    namespace = solution(**{grade_id: edited(grade_id, pair)})
    for tests, points in (("gradcam_c_tests", 3), ("gradcam_d_tests", 3), ("gradcam_e_tests", 8)):
        score, output = run_hidden_test(tests, namespace)
        assert score == points, f"{name}: {tests} {score}/{points}\n{output}"


# -- wrong answers lose the points of their own check only ---------------------------------------------------

WRONG = {
    "no pretrained weights": ("gradcam_c_model", ("resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)", "resnet18(weights=None)"),
                              "gradcam_c_tests", 1.5, "not the pretrained ResNet-18"),
    "feature map from a second forward pass": ("gradcam_c_model", (FORWARD, """        net = self.resnet
        features = nn.Sequential(*list(net.children())[:-2])(x)
        return net(x), features"""), "gradcam_c_tests", 2.5, "feature map not kept in the graph"),
    "shorter side resized to 224, no crop": ("gradcam_d_preprocess", ("transforms.Resize((224, 224)),", "transforms.Resize(224),"),
                                             "gradcam_d_tests", 2, "network's input size"),
    "no batch dimension": ("gradcam_d_preprocess", ('return transform(image.convert("RGB")).unsqueeze(0)',
                                                    'return transform(image.convert("RGB"))'),
                           "gradcam_d_tests", 2, "network's input size"),
    "model left in training mode": ("gradcam_d_preprocess", ("    model.eval()\n", ""),
                                    "gradcam_d_tests", 2, "evaluation mode"),
    "gradient of the log-softmax": ("gradcam_e_grad_cam", ("logits[0, class_idx], features)",
                                                           "logits.log_softmax(dim=1)[0, class_idx], features)"),
                                    "gradcam_e_tests", 6, "wrong gradient"),
    "class_idx ignored, top class used": ("gradcam_e_grad_cam", ("logits[0, class_idx], features)",
                                                                 "logits[0, logits.argmax()], features)"),
                                          "gradcam_e_tests", 7, "class_idx ignored"),
    "abs instead of ReLU": ("gradcam_e_grad_cam", ("cam = F.relu((alpha * features).sum(dim=1))[0]",
                                                   "cam = (alpha * features).sum(dim=1)[0].abs()"),
                            "gradcam_e_tests", 7, "missing ReLU"),
    "map with a batch dimension": ("gradcam_e_grad_cam", ("cam = F.relu((alpha * features).sum(dim=1))[0]",
                                                          "cam = F.relu((alpha * features).sum(dim=1))"),
                                   "gradcam_e_tests", 7, "feature map's size"),
    "map transposed": ("gradcam_e_grad_cam", ("resized[:, :, None]", "resized.T.reshape(height, width)[:, :, None]"),
                       "gradcam_e_tests", 7, "not resized"),
    "channels first": ("gradcam_e_grad_cam", ("return (original * resized[:, :, None]).numpy()",
                                              "return (original * resized[:, :, None]).permute(2, 0, 1)"),
                       "gradcam_e_tests", 7, "not resized"),
    # two mistakes at once: the 224x224 network input is both normalized and not the image's size
    "multiplied into the network input": ("gradcam_e_grad_cam", (ORIGINAL, "original = preprocess(image)[0].permute(1, 2, 0)"),
                                          "gradcam_e_tests", 6.5, "normalized"),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answers_lose_the_points_of_their_own_checks(name):
    grade_id, pair, tests, expected, reason = WRONG[name]
    namespace = solution(**{grade_id: edited(grade_id, pair)})
    score, output = run_hidden_test(tests, namespace)
    assert score == expected, f"{name}: {score} points, expected {expected}\n{output}"
    assert any(reason in line for line in lost(output)), output
    for other, points in (("gradcam_c_tests", 3), ("gradcam_d_tests", 3), ("gradcam_e_tests", 8)):
        if other != tests:
            assert run_hidden_test(other, namespace)[0] == points, f"{name} also costs points in {other}"


# -- a network of another interface, used consistently, is graded on its own terms -------------------------------

LOGITS_ONLY = {
    "gradcam_c_model": (FORWARD, "        return self.resnet(x)"),
    "gradcam_d_preprocess": ("""    with torch.no_grad():
        logits, features = model(x)
    return logits, features""", """    saved = {}
    hook = model.resnet.layer4.register_forward_hook(lambda module, inputs, output: saved.update(features=output))
    with torch.no_grad():
        logits = model(x)
    hook.remove()
    return logits, saved["features"]"""),
    "gradcam_e_grad_cam": ("    logits, features = model(x)\n", """    saved = {}
    hook = model.resnet.layer4.register_forward_hook(lambda module, inputs, output: saved.update(features=output))
    logits = model(x)
    hook.remove()
    features = saved["features"]
"""),
}


def logits_only(**more):
    """The solution with a network whose forward returns only the logits, and extract/grad_cam written for it."""
    answers = {grade_id: edited(grade_id, pair) for grade_id, pair in LOGITS_ONLY.items()}
    for grade_id, pair in more.items():
        old, new = pair
        assert answers[grade_id].count(old) == 1, old
        answers[grade_id] = answers[grade_id].replace(old, new)
    return solution(**answers)


def test_a_network_of_another_interface_is_charged_once():
    namespace = logits_only()
    scores = {tests: run_hidden_test(tests, namespace) for tests in ("gradcam_c_tests", "gradcam_d_tests", "gradcam_e_tests")}
    assert {t: s for t, (s, _) in scores.items()} == {"gradcam_c_tests": 1.5, "gradcam_d_tests": 3, "gradcam_e_tests": 8}, scores
    assert "checked with your own GradCAMResNet" in scores["gradcam_e_tests"][1]
    assert "checked with your own GradCAMResNet" in scores["gradcam_d_tests"][1]


def test_the_hand_graded_grad_cam_loses_what_the_human_took():
    """The exam graded by hand: 1(c) 1.5/3 (feature map not returned), 1(d) 3/3, 1(e) 4.5/8 (incorrect gradient;
    map of the wrong size; map on the normalized image)."""
    namespace = logits_only(gradcam_e_grad_cam=("logits[0, class_idx], features)",
                                                "logits.softmax(dim=1)[0, class_idx], features)"))
    namespace_map = logits_only(gradcam_e_grad_cam=(ORIGINAL, "original = preprocess(image)[0].permute(1, 2, 0)"))
    assert run_hidden_test("gradcam_e_tests", namespace)[0] == 6
    assert run_hidden_test("gradcam_e_tests", namespace_map)[0] == 6.5
    both = {**LOGITS_ONLY}
    answers = {grade_id: edited(grade_id, pair) for grade_id, pair in both.items()}
    answers["gradcam_e_grad_cam"] = (answers["gradcam_e_grad_cam"]
                                     .replace("logits[0, class_idx], features)", "logits.softmax(dim=1)[0, class_idx], features)")
                                     .replace(ORIGINAL, "original = preprocess(image)[0].permute(1, 2, 0)"))
    namespace = solution(**answers)
    got = [run_hidden_test(tests, namespace)[0] for tests in ("gradcam_c_tests", "gradcam_d_tests", "gradcam_e_tests")]
    assert got == [1.5, 3, 4.5]


def test_the_reference_cases_of_the_hidden_tests_are_informative():
    """The class for the ReLU check has clearly negative parts, and the gradient check compares many positions."""
    namespace = solution()
    score, output = run_hidden_test("gradcam_e_tests", namespace)
    assert score == 8, output
    for references, top, mixed in ((namespace["_references"], namespace["_top"], namespace["_mixed"]),
                                   (namespace["_varying_references"], namespace["_varying_top"], namespace["_varying_mixed"])):
        assert mixed != top
        ratio = -references[mixed].min().item() / references[mixed].max().item()
        assert 0.3 < ratio < 3, f"class {mixed}: min/max = {-ratio:.3f}"
        assert (references[mixed] < -0.05 * references[mixed].max()).sum() >= 5
        assert (references[top] > 0.05 * references[top].max()).sum() >= 10
        assert not torch.allclose(references[top].clamp(min=0) / references[top].max(),
                                  references[mixed].clamp(min=0) / references[mixed].max(), atol=0.05)


# -- the photo cell --------------------------------------------------------------------------------------------

def run_photo_cell(namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(cells()["gradcam_photo"].source, "gradcam_photo", "exec"), namespace)
    return out.getvalue()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    picture = Image.fromarray(np.full((30, 40, 4), 128, dtype=np.uint8), mode="RGBA")
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_photo_cell_downloads_once_falls_back_and_says_what_it_used(monkeypatch, tmp_path):
    monkeypatch.delenv("NBGRADER_EXECUTION")
    calls = []

    def urlopen(request, timeout=None):
        calls.append(request.full_url)
        assert request.get_header("User-agent"), "Wikimedia refuses requests without a User-Agent"
        if "wikimedia" in request.full_url:
            raise urllib.error.URLError("offline")
        return _Response(png_bytes())

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    namespace = solution()
    printed = run_photo_cell(namespace)
    path = tmp_path / "data" / "photos" / "example.jpg"
    assert len(calls) == 2 and "could not download" in printed and "scikit-image" in printed, printed
    assert path.exists() and Image.open(path).format == "JPEG" and Image.open(path).mode == "RGB"
    assert namespace["image"].size == (40, 30)

    printed = run_photo_cell(namespace)  # the second time: nothing downloaded
    assert len(calls) == 2 and "scikit-image" in printed

    path.unlink()
    monkeypatch.setattr("urllib.request.urlopen", lambda request, timeout=None: (_ for _ in ()).throw(
        urllib.error.URLError("offline")))
    printed = run_photo_cell(namespace)
    assert "generated" in printed and not path.exists() and namespace["image"].size == (320, 240)


def test_the_photo_cell_never_downloads_in_grading_mode(monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *args, **kwargs: pytest.fail("downloaded while grading"))
    namespace = solution()
    assert "generated" in run_photo_cell(namespace)


# -- real photos -----------------------------------------------------------------------------------------------

@needs_photos
@pytest.mark.parametrize("name", ["lion.jpg", "chelsea.png", "panda.jpg", "coffee.png"])
def test_the_solution_on_real_photos_matches_a_reference_grad_cam(name):
    namespace = solution()
    photo = Image.open(PHOTOS / name)
    torch.manual_seed(0)
    model = namespace["GradCAMResNet"]().eval()  # the random weights under TORCH_HOME
    x = namespace["preprocess"](photo)
    assert tuple(x.shape) == (1, 3, 224, 224) and x.dtype == torch.float32
    logits, features = namespace["extract"](model, photo)
    top = logits.argmax().item()

    logits, features = model(x)
    gradient, = torch.autograd.grad(logits[0, top], features)
    reference = F.relu((gradient.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1))[0].detach()
    reference = reference / reference.max()
    cam = namespace["grad_cam"](model, x, top)
    torch.testing.assert_close(cam, reference, rtol=1e-5, atol=1e-6)

    masked = namespace["apply_map"](cam, photo)
    assert masked.shape == (photo.height, photo.width, 3) and masked.dtype == np.float32
    resized = F.interpolate(cam[None, None], size=(photo.height, photo.width), mode="bilinear")[0, 0].numpy()
    np.testing.assert_allclose(masked, np.asarray(photo, dtype=np.float32) / 255 * resized[:, :, None], atol=1e-6)


@needs_photos
def test_preprocess_handles_greyscale_and_transparent_images():
    namespace = solution()
    photo = Image.open(PHOTOS / "chelsea.png")
    for mode in ("L", "RGBA"):
        x = namespace["preprocess"](photo.convert(mode))
        assert tuple(x.shape) == (1, 3, 224, 224), mode
    grey = namespace["preprocess"](photo.convert("L"))[0]
    pixels = grey * torch.tensor([0.229, 0.224, 0.225])[:, None, None] + torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    torch.testing.assert_close(pixels[0], pixels[1], atol=1e-5, rtol=0)  # the grey value in all three channels
    torch.testing.assert_close(pixels[0], pixels[2], atol=1e-5, rtol=0)


@needs_photos
def test_the_photo_cell_uses_a_photo_in_the_data_folder(tmp_path):
    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    (photos / "example.jpg").write_bytes((PHOTOS / "lion.jpg").read_bytes())
    namespace = solution()
    printed = run_photo_cell(namespace)
    assert "1280x960" in printed and namespace["image"].size == (1280, 960)
    assert os.environ["COURSE_DATA_DIR"] in printed

"""Look inside a student's network by running it: layer shapes and the torch ops it calls.

Hidden tests check *behaviour* rather than source text: ``run_traced`` builds the
model, runs one batch through it while forward hooks record the input and output
shape of every ``nn.Conv2d`` and a ``TorchFunctionMode`` records the name of every
top-level torch function it calls (``conv2d``, ``relu``, ``dropout``, ...).  Both
work whether a student writes ``nn.ReLU()`` modules or ``F.relu`` calls, and both
keep what was recorded up to the point where a broken forward pass fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .grading import Crash, _crash_text, _is_stub

ACTIVATIONS = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "selu_", "celu", "celu_",
    "gelu", "silu", "mish", "tanh", "tanh_", "sigmoid", "sigmoid_", "hardtanh", "hardtanh_", "softplus",
    "prelu", "rrelu", "rrelu_", "hardswish", "hardsigmoid", "logsigmoid", "softsign", "glu",
})
REGULARIZERS = frozenset({
    "dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_dropout",
    "feature_alpha_dropout", "batch_norm",
})
LAYERS = frozenset({"conv1d", "conv2d", "conv3d", "linear"})


def _name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return name


class _Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []
        self.linear_inputs: list[tuple] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = _name(func)
        self.calls.append(name)
        if name == "linear" and args and torch.is_tensor(args[0]):
            self.linear_inputs.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


@dataclass
class Layer:
    module: nn.Module
    input: tuple | None = None
    output: tuple | None = None


@dataclass
class TracedRun:
    model: nn.Module | None = None
    output: torch.Tensor | None = None
    error: str | None = None
    calls: list = field(default_factory=list)
    convs: list = field(default_factory=list)
    linear_inputs: list = field(default_factory=list)  # the input shape of every linear layer call, in order
    crash: str | None = None  # "your `forward` raised ...", when the student's code raised
    stub: bool = False        # ... and that exception was the stub's NotImplementedError

    @property
    def built(self) -> bool:
        return self.model is not None

    def require_model(self) -> nn.Module:
        """The network; the line is "not checked" when building it raised."""
        if self.model is None:
            self._fail()
        return self.model

    def stopped(self, before: str):
        """Fail a line whose evidence is missing because the forward pass stopped before ``before``: "not checked"
        when the student's code raised there."""
        if self.crash is not None:
            raise Crash(f"{self.crash} before {before}", stub=self.stub)
        raise AssertionError(f"the forward pass stopped before {before}: {self.error}")

    def has_module(self, *types) -> bool:
        """Whether the network holds a module of one of ``types`` (e.g. nn.Dropout)."""
        return self.model is not None and any(isinstance(m, types) for m in self.model.modules())

    def _fail(self):
        if self.crash is not None:
            raise Crash(self.crash, stub=self.stub)
        raise AssertionError(self.error or "the network could not be run")

    def used(self, names) -> bool:
        """Whether any of ``names`` was called in the forward pass."""
        return any(call in names for call in self.calls)

    def convs_without(self, names) -> list[int]:
        """Indices of the convolution calls not followed by one of ``names`` before the next layer."""
        positions = [i for i, call in enumerate(self.calls) if call in ("conv1d", "conv2d", "conv3d")]
        missing = []
        for k, start in enumerate(positions):
            following = []
            for call in self.calls[start + 1:]:
                if call in LAYERS:
                    break
                following.append(call)
            if not any(call in names for call in following):
                missing.append(k)
        return missing


def run_traced(factory, x: torch.Tensor, train: bool = True) -> TracedRun:
    """Build ``factory()`` and run ``x`` through it; never raises, see ``TracedRun.error``."""
    run = TracedRun()
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001
        run.error = f"building the network raised {type(exc).__name__}: {exc}"
        run.crash, run.stub = _crash_text(exc), _is_stub(exc)
        return run
    run.model = model
    model.train(train)
    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            layer = Layer(module)
            run.convs.append(layer)
            hooks.append(module.register_forward_pre_hook(
                lambda m, args, layer=layer: setattr(layer, "input", tuple(args[0].shape))))
            hooks.append(module.register_forward_hook(
                lambda m, args, out, layer=layer: setattr(layer, "output", tuple(out.shape))))
    recorder = _Recorder()
    try:
        with recorder:
            run.output = model(x)
        if not torch.is_tensor(run.output):
            run.error = f"forward returned {type(run.output).__name__}, not a tensor"
    except Exception as exc:  # noqa: BLE001
        run.error = f"{type(exc).__name__}: {exc}"
        run.crash, run.stub = _crash_text(exc), _is_stub(exc)
    finally:
        for hook in hooks:
            hook.remove()
    run.calls = recorder.calls
    run.linear_inputs = recorder.linear_inputs
    return run

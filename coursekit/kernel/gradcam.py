"""References for the Grad-CAM hidden tests on a student's own network (exam/1_gradcam, 1(d) and 1(e)).

The task prescribes a network whose ``forward`` returns ``(logits, feature map)``.  A student whose network
returns only the logits, and who writes ``extract`` and ``grad_cam`` consistently for it (taking the feature
map with a hook on the ResNet's ``layer4``, say), loses the points of that deviation once, in 1(c); 1(d) and
1(e) are then graded on the student's own network.  For that the tests need, for *any* model built around
torchvision's ResNet:

* :class:`FeatureTap`: the model with the prescribed interface, ``(logits, output of layer4)``, to compute
  the reference values from;
* :func:`with_varying_head`: a copy of the model whose global average pooling is replaced by a fixed,
  position-weighted pooling, so that the gradient of a logit differs from position to position (on plain
  ResNet-18 it is the same everywhere, and a Grad-CAM that forgets to average the gradient would pass).
"""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import nn


def inner_resnet(model: nn.Module) -> torchvision.models.ResNet:
    """The torchvision ResNet inside ``model`` (or ``model`` itself); AssertionError when there is none."""
    found = [m for m in model.modules() if isinstance(m, torchvision.models.ResNet)]
    assert found, f"no torchvision ResNet inside the {type(model).__name__}"
    return found[0]


class FeatureTap(nn.Module):
    """``model`` with the prescribed interface: ``forward(x) -> (logits, output of the ResNet's layer4)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.resnet = inner_resnet(model)

    def forward(self, x):
        taken = []
        hook = self.resnet.layer4.register_forward_hook(lambda module, args, output: taken.append(output))
        try:
            out = self.model(x)
        finally:
            hook.remove()
        logits = out[0] if isinstance(out, (tuple, list)) else out
        assert taken, "the ResNet's layer4 did not run"
        return logits, taken[-1]


class PositionWeightedPool(nn.Module):
    """Pooling with fixed weights that differ per position: ``(B, Q, K, M) -> (B, Q, 1, 1)``."""

    def forward(self, a):
        k, m = a.shape[-2:]
        rows = torch.linspace(0.5, 1.5, k, dtype=a.dtype, device=a.device)[:, None]
        cols = torch.linspace(1.5, 0.5, m, dtype=a.dtype, device=a.device)[None, :]
        weights = rows * cols
        return (a * (weights / weights.sum())).sum(dim=(-2, -1), keepdim=True)


def with_varying_head(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ResNet pools the feature map with :class:`PositionWeightedPool`."""
    varied = copy.deepcopy(model)
    inner_resnet(varied).avgpool = PositionWeightedPool()
    return varied

"""PyTorch layers for training binarized networks that the runtime can run.

Each layer keeps a real-valued "latent" weight that the optimizer updates,
and uses only its sign in the forward pass. The sign has no useful gradient,
so training passes the gradient straight through where the input is in
[-1, 1] (the straight-through estimator of BinaryNet). The conventions match
the runtime exactly: sign(0) = +1, no biases (a batch norm after the layer
supplies the offset), zero padding for convolutions.

After each optimizer step call :func:`clip_weights` (or ``layer.clip_()``):
latent weights outside [-1, 1] get no gradient through the STE's window and
would otherwise drift away and never flip sign again.
"""
import torch
import torch.nn.functional as F
from torch import nn


class _SignSTE(torch.autograd.Function):
    """+1 where x >= 0 else -1; the gradient passes where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x):
    """Binarize ``x`` to +-1 (sign(0) = +1) with a straight-through gradient."""
    return _SignSTE.apply(x)


class Sign(nn.Module):
    """The activation of binarized networks: +-1 out, straight-through gradient."""

    def forward(self, x):
        return sign_ste(x)


class BinaryLinear(nn.Linear):
    """Fully connected layer with +-1 weights and no bias.

    Subclasses ``nn.Linear`` so the latent weight has the usual shape
    ``(out_features, in_features)`` and initialization; only its sign is used.
    """

    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x):
        return F.linear(x, sign_ste(self.weight))

    @torch.no_grad()
    def clip_(self):
        """Keep the latent weights in [-1, 1], where the STE lets gradients through."""
        self.weight.clamp_(-1.0, 1.0)


class BinaryConv2d(nn.Conv2d):
    """2-D convolution with +-1 weights, no bias and zero padding.

    Zero padding is what the runtime implements: a padded position adds 0
    to the dot product (it is neither +1 nor -1).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, bias=False)

    def forward(self, x):
        return F.conv2d(x, sign_ste(self.weight), None, self.stride, self.padding)

    @torch.no_grad()
    def clip_(self):
        """Keep the latent weights in [-1, 1], where the STE lets gradients through."""
        self.weight.clamp_(-1.0, 1.0)


def clip_weights(module):
    """Clip the latent weights of every binary layer inside ``module``."""
    for layer in module.modules():
        if isinstance(layer, (BinaryLinear, BinaryConv2d)):
            layer.clip_()

"""Fold BatchNorm into the preceding convolution for inference (REFERENCE §6: the deployed net is
spike-only: conv (with bias) -> neuron, no BN arithmetic between them).

With BN in eval mode, y = gamma (conv(x) - mean) / sqrt(var + eps) + beta, which is a convolution with
per-output-channel scaled weights W' = W k and bias b' = (b - mean) k + beta, k = gamma / sqrt(var + eps).

``fold_batchnorms`` uses one rule, so it never guesses at a module's data flow:
  1. inside any ``nn.Sequential``, a ConvNd immediately followed by a BatchNormNd of matching width;
  2. any module with direct children named ``conv`` (ConvNd) and ``bn`` (BatchNormNd) — such a module
     must apply ``bn`` directly to ``conv``'s output, the convention eventstereo's ops follow.
The BatchNorm is replaced by ``nn.Identity`` so parameter names of the conv stay unchanged.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

__all__ = ["fold_bn", "fold_batchnorms"]

log = logging.getLogger(__name__)

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _dims(m: nn.Module) -> int:
    if isinstance(m, (nn.Conv1d, nn.BatchNorm1d)):
        return 1
    if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
        return 2
    return 3


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, _CONVS) and isinstance(bn, _BNS) and _dims(conv) == _dims(bn)
            and bn.num_features == conv.out_channels)


@torch.no_grad()
def fold_bn(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A new conv equal to ``bn(conv(x))`` with `bn` in eval mode (running statistics). Inputs untouched."""
    if not isinstance(conv, _CONVS):
        raise TypeError(f"fold_bn needs a Conv1d/2d/3d, not {type(conv).__name__}")
    if not isinstance(bn, _BNS):
        raise TypeError(f"fold_bn needs a BatchNorm1d/2d/3d, not {type(bn).__name__}")
    if _dims(conv) != _dims(bn) or bn.num_features != conv.out_channels:
        raise ValueError(f"cannot fold {bn} into {conv}: dimensions or channel counts differ")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    fused = copy.deepcopy(conv)
    w = conv.weight
    k = torch.rsqrt(bn.running_var.to(torch.float64) + bn.eps)
    if bn.weight is not None:
        k = k * bn.weight.to(torch.float64)
    bias = conv.bias.to(torch.float64) if conv.bias is not None else torch.zeros_like(k)
    b = (bias - bn.running_mean.to(torch.float64)) * k
    if bn.bias is not None:
        b = b + bn.bias.to(torch.float64)
    shape = (-1,) + (1,) * (w.dim() - 1)
    fused.weight = nn.Parameter((w.to(torch.float64) * k.view(shape)).to(w.dtype), w.requires_grad)
    fused.bias = nn.Parameter(b.to(w.dtype), w.requires_grad)
    return fused


def fold_batchnorms(model: nn.Module) -> nn.Module:
    """Fold every conv -> BN pair found by the module docstring's rule, in place; returns `model`.

    Call on a model in eval mode for deployment: after folding, the network computes the eval-mode
    function, and training it further would train without BatchNorm.
    """
    folded = 0
    for parent in list(model.modules()):
        if isinstance(parent, nn.Sequential):
            keys = list(parent._modules)
            for a, b in zip(keys, keys[1:]):
                conv, bn = parent._modules[a], parent._modules[b]
                if _foldable(conv, bn):
                    parent._modules[a] = fold_bn(conv, bn)
                    parent._modules[b] = nn.Identity()
                    folded += 1
        conv, bn = parent._modules.get("conv"), parent._modules.get("bn")
        if conv is not None and bn is not None and _foldable(conv, bn):
            parent.conv = fold_bn(conv, bn)
            parent.bn = nn.Identity()
            folded += 1
    log.debug("folded %d BatchNorm layers", folded)
    return model

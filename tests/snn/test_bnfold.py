"""BatchNorm folding: equal eval-mode outputs, BN gone, conv/bn naming rule."""

import pytest
import torch
from torch import nn

from eventstereo.snn import LIFNode, SeqToANN, fold_batchnorms, fold_bn


def _trained_bn(bn, x_like, affine=True):
    """Give a BN non-trivial running statistics and affine parameters."""
    bn.train()
    with torch.no_grad():
        for _ in range(3):
            bn(x_like * 2 + 0.5)
        if affine and bn.weight is not None:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    return bn.eval()


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("conv_bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_fold_bn_equal_outputs(dims, conv_bias, affine):
    torch.manual_seed(dims)
    Conv, BN = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    conv = Conv(3, 5, 3, padding=1, bias=conv_bias, groups=1).double()
    x = torch.randn((2, 3) + (6,) * dims, dtype=torch.float64)
    bn = _trained_bn(BN(5, affine=affine).double(), conv(x).detach())
    folded = fold_bn(conv, bn)
    assert isinstance(folded, Conv) and folded is not conv and folded.bias is not None
    torch.testing.assert_close(folded(x), bn(conv(x)), rtol=1e-10, atol=1e-10)
    assert conv.bias is None or not torch.equal(conv.bias, folded.bias)  # original untouched
    assert (conv.bias is None) == (not conv_bias)


def test_fold_bn_float32_grouped_and_errors():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    x = torch.randn(2, 4, 5, 5)
    bn = _trained_bn(nn.BatchNorm2d(6), conv(x).detach())
    torch.testing.assert_close(fold_bn(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="channel"):
        fold_bn(conv, nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match="channel"):
        fold_bn(conv, nn.BatchNorm3d(6))
    with pytest.raises(ValueError, match="running"):
        fold_bn(conv, nn.BatchNorm2d(6, track_running_stats=False))
    with pytest.raises(TypeError):
        fold_bn(nn.Linear(3, 3), nn.BatchNorm1d(3))


class _ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(3)
        self.lif = LIFNode(theta=0.3)

    def forward(self, x):
        return self.lif(self.bn(self.conv(x)))


def test_fold_batchnorms_spiking_network_is_equal_and_bn_free():
    torch.manual_seed(3)
    net = nn.Sequential(
        SeqToANN(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)),
        LIFNode(theta=0.3),
        nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.BatchNorm2d(2)),  # BN not after a conv: kept
    ).double()
    block = _ConvBN().double()
    x = torch.rand(2, 2, 6, 6, dtype=torch.float64)
    x3 = torch.rand(1, 2, 3, 4, 4, dtype=torch.float64)
    for m in (net, block):
        for sub in m.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.train()
        with torch.no_grad():
            for _ in range(3):
                (net(x) if m is net else block(x3))
                for n in m.modules():
                    if hasattr(n, "reset"):
                        n.reset()
        m.eval()
    ref, ref3 = net(x), block(x3)
    net[1].reset()
    block.lif.reset()
    assert fold_batchnorms(net) is net and fold_batchnorms(block) is block
    assert isinstance(net[0].body[1], nn.Identity) and isinstance(block.bn, nn.Identity)
    assert isinstance(net[2][2], nn.BatchNorm2d)
    remaining = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(remaining) == 1
    assert torch.equal(net(x), ref) and torch.equal(block(x3), ref3)
    assert 0 < ref3.mean() < 1  # the folded block still spikes, identically

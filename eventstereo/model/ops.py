"""The op vocabulary of SpikeDHS (REFERENCE §6), shared by the deployed network and the NAS supernet.

:data:`OPS` is THE op table: name -> :class:`OpSpec` (builder, surrogate temperature, fusable flag).
``OPS[name](c_in, c_out, dim=2|3, external=bool)`` builds one edge op. Every op returns the pre-spike
CURRENT, not spikes: cells mix at the membrane, so the node sums its edge currents into one membrane
and spikes once (the paper's "MM" mixing). The ops:

- ``snn_b3`` / ``snn_b5``: BN(conv3x3(x)) (conv3x3x3 in 3-D). The "b" is the Dspike temperature the op
  asks of the node neuron that integrates its current (``OPS[name].temperature``); which op of a node
  sets it is the genotype's rule (``eventstereo.model.genotype.NetGenotype.node_temperature``).
- ``skip_connect``: the identity between nodes of a cell (the current is the source node's spikes);
  from outside the cell (``external=True``: inputs s0/s1, whose widths differ) it is BN(conv1x1(x)),
  the channel-aligning pre-processing of DARTS merged into the op, as the paper does.

Layouts: 2-D feature maps are (N, C, H, W). 3-D feature maps are (N, D, C, H, W), disparity-major,
because a conv3x3x3 is evaluated as ONE Conv2d over the three neighbouring disparity planes stacked as
channels (``Conv2d(3C -> C')`` on the (N*D, 3C, H, W) view). That is the same arithmetic as Conv3d with
zero padding over D, and small Conv3d kernels are 5-10x slower on CPU (REFERENCE §11). Parameters keep
the 3-D op's shape (``conv.weight`` is (C', C, 3, 3, 3) of an ``nn.Conv3d``; BN is a BatchNorm3d) so a
genotype means one thing and BN folding and state dicts see ordinary layers.

:func:`conv_currents` runs several ConvBN ops that read the same input as one convolution with
concatenated output channels (REFERENCE §11: fewer, wider kernels). With BN in eval mode it folds BN into
that convolution. It calls the forward hooks of each op's ``conv`` with the op's own input and output,
so ``eventstereo.snn.energy.count_ops`` counts the work of the fused call per op.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBN(nn.Module):
    """``bn(conv(x))`` with 'same' zero padding: the current a spiking conv feeds its neuron.

    ``conv`` has no bias (BN supplies it) unless BatchNorm was folded (``bn`` is then ``nn.Identity``).
    ``stride`` is 1 in cells; stems use it to downsample.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, dim: int = 2, *, stride: int = 1,
                 padding: int | None = None):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        if dim == 3 and (kernel not in (1, 3) or stride != 1 or padding not in (None, kernel // 2)):
            raise ValueError("3-D ConvBN supports kernel 1 or 3 with stride 1 and 'same' padding")
        self.dim = dim
        self.kernel = kernel
        self.stride = stride
        self.padding = kernel // 2 if padding is None else padding
        conv_cls, bn_cls = (nn.Conv2d, nn.BatchNorm2d) if dim == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.conv = conv_cls(c_in, c_out, kernel, stride=stride, padding=self.padding, bias=False)
        self.bn: nn.Module = bn_cls(c_out)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return conv_currents([self], x)[0]

    def folded(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of the conv with eval-mode BN folded in (differentiable; nothing modified)."""
        w = self.conv.weight
        b = self.conv.bias if self.conv.bias is not None else w.new_zeros(w.shape[0])
        bn = self.bn
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            k = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                k = k * bn.weight
            b = (b - bn.running_mean) * k
            if bn.bias is not None:
                b = b + bn.bias
            w = w * k.view((-1,) + (1,) * (w.dim() - 1))
        return w, b


def _bn_trains(bn: nn.Module) -> bool:
    """True if ``bn`` normalises with batch statistics (then it cannot be folded into the conv)."""
    return isinstance(bn, nn.modules.batchnorm._BatchNorm) and (
        bn.training or bn.running_mean is None or bn.running_var is None
    )


# ------------------------------------------------------------------- weights prepared once per model
# Folding BN, concatenating the weights of fused ops and transforming them (3-D -> 2-D, x2 phases) cost
# about 10 % of a streaming window when redone every call. In inference (grad disabled) they are
# computed once and cached, keyed on the identity, storage and version counter of the tensors they are
# computed from: an optimizer step, load_state_dict or any in-place change bumps the version, `.to()`
# or `p.data = ...` changes the storage, and the next call recomputes. The cache pins the storage of
# what it was computed from, so a freed weight's address cannot come back as a false hit. With grad
# enabled (training) nothing is cached: the transforms stay in the autograd graph. Writes through
# ``p.data`` bypass the version counter: call :func:`forget_prepared` after those.
_DERIVED: dict[tuple[int, str], tuple] = {}


def forget_prepared(module: nn.Module) -> None:
    """Drop the prepared weights cached for ``module`` and its submodules, and every cached transform
    (needed only after writing weights through ``.data``, which the version counter does not see)."""
    for m in module.modules():
        m.__dict__.pop("_prepared_weights", None)
    _DERIVED.clear()


def _version(t: Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors keep no version (and cannot be updated outside inference mode)
        return -1


def _stamp(tensors: Sequence[Tensor | None]) -> tuple:
    """What identifies the values of ``tensors``: storage address (it changes with device and dtype) and
    version counter (it changes with every in-place update)."""
    return tuple((t.data_ptr(), _version(t)) for t in tensors if t is not None)


def derived(t: Tensor, name: str, fn: Callable[[Tensor], object]) -> object:
    """``fn(t)``, cached per tensor while ``t`` keeps its storage and version (see above). ``fn`` must
    return new tensors, not views of ``t``: a view would keep ``t`` alive and its entry with it."""
    if torch.is_grad_enabled():
        return fn(t)
    key = (id(t), name)
    hit = _DERIVED.get(key)
    stamp = _stamp([t])
    if hit is not None and hit[0]() is t and hit[1] == stamp:
        return hit[3]
    value = fn(t)
    # the dict is bound as a default: at interpreter exit the module global may already be None
    _DERIVED[key] = (weakref.ref(t, lambda _, k=key, d=_DERIVED: d.pop(k, None)), stamp, t.detach(), value)
    return value


def prepared(owner: nn.Module, name: str, sources: Sequence[Tensor | None],
             fn: Callable[[], object]) -> object:
    """``fn()``, cached on ``owner`` while all ``sources`` (the parameters and buffers it reads) keep
    their storage and version (see above)."""
    if torch.is_grad_enabled():
        return fn()
    cache = owner.__dict__.setdefault("_prepared_weights", {})
    stamp = _stamp(sources)
    hit = cache.get(name)
    if hit is not None and hit[0] == stamp:
        return hit[2]
    value = fn()
    cache[name] = (stamp, [t.detach() for t in sources if t is not None], value)
    return value


def _sources(op: ConvBN) -> list[Tensor | None]:
    """The tensors an op's folded weights are computed from (read from the module dicts directly:
    nn.Module.__getattr__ would cost more than the rest of the cache lookup)."""
    conv, bn = op._modules["conv"], op._modules["bn"]
    out = [conv._parameters["weight"], conv._parameters.get("bias")]
    out += bn._parameters.values()
    out += bn._buffers.values()  # running statistics and num_batches_tracked (harmless)
    return out


def _channels_last_weight(w: Tensor) -> Tensor:
    return w.contiguous(memory_format=torch.channels_last)


def _onednn_runs(x: Tensor, weight: Tensor) -> bool:
    """True where torch's CPU conv2d surely takes oneDNN (its rule in aten Convolution.cpp use_mkldnn):
    float32, and a batch above 1 or more than 20480 input elements; 1x1 kernels excluded (on one thread
    torch runs those natively)."""
    return (x.dim() == 4 and weight.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.shape[-2:] != (1, 1) and (x.shape[0] > 1 or x.numel() > 20480))


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
           padding: int | tuple[int, int] = 0) -> Tensor:
    """``F.conv2d``, with the weight of a channels-last input handed over in that layout too, kept once
    per weight in inference (:func:`derived`). oneDNN runs such a conv in channels-last memory and
    otherwise copies the weight into it on every call: the same numbers, but about 10 copies of up to a
    megabyte per streaming window. Only an input that is channels-last and nothing else: for any other
    (a strided view, a shape that is both layouts) torch picks the layout and a channels-last weight
    could change its pick, and with it the sums; and only where torch runs oneDNN (its own small-conv
    kernel sums in another order with a channels-last weight)."""
    if (not torch.is_grad_enabled() and _onednn_runs(x, weight) and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
            and not weight.is_contiguous(memory_format=torch.channels_last)):
        weight = derived(weight, "channels-last", _channels_last_weight)
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


def _empty_nhwc(n: int, d: int, c: int, h: int, w: int, like: Tensor) -> Tensor:
    """An uninitialised (N, D, C, H, W) tensor with channels innermost in memory, so that its
    (N*D, C, H, W) view is channels-last: the layout in which CPU convolutions run fastest here
    (1.1-3x over NCHW on every 3-D-cell shape measured)."""
    return like.new_empty(n, d, h, w, c).permute(0, 1, 4, 2, 3)


def stack_planes(x: Tensor, stride: int = 1) -> Tensor:
    """(N, D, C, H, W) -> (N, D', 3C, H, W): planes d-1, d, d+1 side by side for d = 0, s, 2s, ...
    (zeros beyond the ends); only the planes a stride-s conv reads are built. Channels-last memory.

    Built by ``torch.cat`` along the channels: it moves each pixel's runs of C channels 2-2.5x faster
    than strided copies into the slots of the stack (measured at C = 8 and 12 on the demo's volumes; the
    demo window gets 4-7 % faster). In inference it writes straight into the stack (``out=``, one batch
    item at a time); with autograd the shifted neighbours are built first (``out=`` is not
    differentiable)."""
    n, d, c, h, w = x.shape
    count = len(range(0, d, stride))
    xs = x.permute(0, 1, 3, 4, 2)  # channels last, as in memory
    if x.requires_grad and torch.is_grad_enabled():  # cat(out=) is not differentiable
        zero = xs.new_zeros(n, 1, h, w, c)
        nxt = xs[:, 1::stride]
        prev = torch.cat([zero, xs[:, stride - 1 :: stride][:, : count - 1]], 1)
        nxt = torch.cat([nxt, zero.expand(n, count - nxt.shape[1], h, w, c)], 1)
        return torch.cat([prev, xs[:, ::stride], nxt], -1).permute(0, 1, 4, 2, 3)
    out = _empty_nhwc(n, count, 3 * c, h, w, x)
    zero = xs.new_zeros(h, w, c)
    inner = (d - 2) // stride if d >= 2 else 0  # centres 1 .. inner have both neighbours
    for b in range(n):
        xb, ob = xs[b], out[b].permute(0, 2, 3, 1)
        if inner:
            end = inner * stride
            torch.cat([xb[stride - 1 : end : stride], xb[stride : end + 1 : stride],
                       xb[stride + 1 : end + 2 : stride]], -1, out=ob[1 : inner + 1])
        for j in [0, *range(inner + 1, count)]:
            p = j * stride
            torch.cat([xb[p - 1] if p else zero, xb[p], xb[p + 1] if p + 1 < d else zero], -1, out=ob[j])
    return out


def _zero_border(out: Tensor) -> Tensor:
    """Zero the one-pixel border of the last two dimensions of ``out`` (in place; returns it): the
    padding of a buffer whose inside is written next, without filling the inside twice."""
    out[..., 0, :] = 0
    out[..., -1, :] = 0
    out[..., 1:-1, 0] = 0
    out[..., 1:-1, -1] = 0
    return out


def _plane_pairs(x: Tensor, first: int, count: int) -> Tensor:
    """(N, count, 2C, H+2, W+2): planes q + first | q + first + 1 for q = 0 .. count-1, zeros outside
    the volume and a one-pixel zero border (the padding of the phase convs). Memory (count, N, H+2, W+2,
    2C): channels-last planes, the plane index outermost, so any run of planes is one flat conv batch
    (:func:`_planes_batch`) without a copy."""
    n, d, c, h, w = x.shape
    out = _zero_border(x.new_empty(count, n, h + 2, w + 2, 2 * c).permute(1, 0, 4, 2, 3))
    inner = out[..., 1:-1, 1:-1]
    for half, offset in ((slice(0, c), first), (slice(c, 2 * c), first + 1)):
        lo, hi = max(0, -offset), min(count, d - offset)  # q range whose plane q + offset exists
        inner[:, :lo, half] = 0
        inner[:, hi:, half] = 0
        if hi > lo:
            inner[:, lo:hi, half] = x[:, lo + offset : hi + offset]
    return out


def _padded_nhwc(x: Tensor) -> Tensor:
    """(M, C, H, W) -> (M, C, H+2, W+2) with a one-pixel zero border, channels-last in memory (F.pad
    returns NCHW memory and writes every element twice)."""
    m, c, h, w = x.shape
    out = _zero_border(x.new_empty(m, h + 2, w + 2, c).permute(0, 3, 1, 2))
    out[..., 1:-1, 1:-1] = x
    return out


def weight_3d_as_2d(weight: Tensor) -> Tensor:
    """Conv3d weight (C', C, 3, k, k) -> Conv2d weight (C', 3C, k, k) matching :func:`stack_planes`."""
    co, ci, kd, kh, kw = weight.shape
    return weight.permute(0, 2, 1, 3, 4).reshape(co, kd * ci, kh, kw)


def conv_nd(x: Tensor, weight: Tensor, bias: Tensor | None, *, stride: int = 1,
            padding: int | None = None) -> Tensor:
    """The convolution of a ConvBN's conv in this module's layouts; returns a flat (M, C', H', W').

    2-D: ordinary conv2d, M = N. 3-D (x (N, D, C, H, W), weight 5-D): 'same' Conv3d over (D, H, W)
    evaluated as a Conv2d over stacked disparity planes, M = N * D'. A 3-D ``stride`` s evaluates the
    same conv only at every s-th plane, row and column (what nearest downsampling of its output keeps).
    """
    if weight.dim() == 4:
        pad = weight.shape[-1] // 2 if padding is None else padding
        return conv2d(x, weight, bias, stride=stride, padding=pad)
    if x.dim() != 5:
        raise ValueError(f"3-D ops take (N, D, C, H, W) feature maps, got shape {tuple(x.shape)}")
    k = weight.shape[-1]
    if k == 1:
        if stride > 1:
            x = x[:, ::stride, :, ::stride, ::stride]
        return conv2d(x.flatten(0, 1), derived(weight, "k1", _squeeze_planes), bias)
    if stride > 1:
        return _conv3d_strided(x, weight, bias, stride)
    stacked = stack_planes(x, stride)
    return conv2d(stacked.flatten(0, 1), derived(weight, "as2d", weight_3d_as_2d), bias, stride=stride,
                    padding=k // 2)


def _taps_as_outputs(weight: Tensor) -> Tensor:
    """Conv3d weight (C', C, 3, k, k) -> Conv2d weight (3C', C, k, k): plane tap kd is output block kd."""
    return torch.cat(weight.unbind(2))


def conv3d_few_outputs(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv_nd(x, weight, bias)`` for a 'same' conv3x3x3 with few output channels, flat (N*D, C', H, W):
    one 2-D conv of every plane with the three plane taps as output channels, then the taps' results
    added with their plane shifts. No plane stack is built, and the conv reads C instead of 3C channels:
    for C' <= 4 about 3x faster than the stacked conv here (oneDNN's time barely falls with C'). The
    sum is taken in another order than the stacked conv's, so the result agrees within float rounding,
    not bit for bit: use it where no neuron thresholds the result (the cost read-out)."""
    if x.dim() != 5 or weight.dim() != 5 or weight.shape[2:] != (3, 3, 3):
        raise ValueError("conv3d_few_outputs takes (N, D, C, H, W) maps and a 3x3x3 weight")
    n, d = x.shape[:2]
    co = weight.shape[0]
    y = conv2d(x.flatten(0, 1), derived(weight, "taps-out", _taps_as_outputs), None, padding=1)
    y = y.unflatten(0, (n, d))  # (N, D, 3C', H, W)
    mid = y[:, :, co : 2 * co]  # tap 1 reads plane d
    out = mid.clone() if bias is None else mid + bias.view(-1, 1, 1)
    if d > 1:
        out[:, 1:] += y[:, :-1, :co]  # tap 0 reads plane d - 1
        out[:, :-1] += y[:, 1:, 2 * co :]  # tap 2 reads plane d + 1
    return out.flatten(0, 1)


def _squeeze_planes(weight: Tensor) -> Tensor:
    return weight[:, :, 0].clone()


def _strided_taps(weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w0, w1, w2 = (w.clone() for w in weight.unbind(2))
    return w0, w1, w2, torch.cat([w0, w2])


def _conv3d_strided(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """Flat 'same' conv3x3x3 at every ``stride``-th plane, row and column, one 2-D conv per plane tap on
    the planes that tap reads (no stacked copy of a large input: this serves layers at 1/3 resolution)."""
    n, d = x.shape[:2]
    centres = len(range(0, d, stride))
    w0, w1, w2, w02 = derived(weight, "taps", _strided_taps)

    def conv(planes: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return conv2d(planes.reshape(-1, *planes.shape[2:]), w, b, stride=stride, padding=1).unflatten(
            0, (n, planes.shape[1]))

    out = conv(x[:, ::stride], w1, bias)  # tap 1 reads the centre plane
    before, after = x[:, stride - 1 :: stride][:, : centres - 1], x[:, 1::stride]  # planes d - 1, d + 1
    if stride == 2 and after.shape[1]:  # planes 1, 3, 5, ... feed both outer taps
        both = conv(after, w02, None)
        y0, y2 = both.split(w0.shape[0], dim=2)
    else:
        y0 = conv(before, w0, None) if before.shape[1] else None
        y2 = conv(after, w2, None) if after.shape[1] else None
    if y0 is not None and centres > 1:
        out[:, 1:] += y0[:, : centres - 1]
    if y2 is not None:
        out[:, : y2.shape[1]] += y2
    return out.flatten(0, 1)


# Nearest x2 upsampling followed by a 'same' 3x3 conv only ever combines, per output phase (even or odd
# row), two input rows with summed kernel taps: even rows see rows q-1 | q with taps k0 | k1+k2, odd
# rows q | q+1 with k0+k1 | k2. So the conv runs at the coarse resolution with 2x2 kernels, one per
# phase, and the phases are interleaved: the same numbers, 27/8 (3-D) or 9/4 (2-D) times less work.
_PHASE_TAPS = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))  # [phase][tap][k]


def _phase_weights(w: Tensor) -> Tensor:
    """(C', C, 3, 3) -> (4C', C, 2, 2): the 2x2 kernel of each (row phase, column phase)."""
    p = torch.tensor(_PHASE_TAPS, dtype=w.dtype, device=w.device)
    co, ci = w.shape[:2]
    return torch.einsum("rak,oikl,sbl->rsoiab", p, w, p).reshape(4 * co, ci, 2, 2)


def _repeat4(b: Tensor) -> Tensor:
    return b.repeat(4)


def _interleave_into(out: Tensor, y: Tensor) -> None:
    """Write the phase-conv result y (..., 4C', h+1, w+1) (channels-last) into out (..., C', 2h, 2w)
    (channels innermost in memory): output pixel (2i + rh, 2j + rw) is phase (rh, rw) at (i + rh, j + rw).
    Four strided copies that write each output element once (no stacks, no reshape copies)."""
    h, w = out.shape[-2] // 2, out.shape[-1] // 2
    co = out.shape[-3]
    o = out.movedim(-3, -1).unflatten(-3, (h, 2)).unflatten(-2, (w, 2))  # (..., h, 2, w, 2, C')
    yv = y.movedim(-3, -1).unflatten(-1, (2, 2, co))  # (..., h+1, w+1, row phase, column phase, C')
    for rh in (0, 1):
        for rw in (0, 1):
            o[..., rh, :, rw, :].copy_(yv[..., rh : rh + h, rw : rw + w, rh, rw, :])


def _conv2d_up2(x: Tensor, w: Tensor, bias: Tensor | None, *, padded: bool = False) -> Tensor:
    """conv2d(nearest_up2(x), w (C', C, 3, 3), bias, padding=1) computed at x's resolution
    (``padded``: x already carries a one-pixel zero border). The result is channels-last in memory."""
    if not padded:
        x = F.pad(x, (1, 1, 1, 1))
    m, _, h, wd = x.shape
    h, wd = h - 2, wd - 2
    co = w.shape[0]
    b4 = None if bias is None else derived(bias, "x4", _repeat4)
    y = conv2d(x, derived(w, "phases", _phase_weights), b4)
    out = x.new_empty(m, 2 * h, 2 * wd, co).permute(0, 3, 1, 2)
    _interleave_into(out, y)
    return out


def _planes_batch(x: Tensor) -> Tensor:
    """(N, q, C, H, W) -> the flat (q * N, C, H, W) conv batch, plane-major (a view for _plane_pairs)."""
    return x.transpose(0, 1).flatten(0, 1)


def _up2_phases(weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The phase weights of the even planes (reading planes q-1 | q), the odd planes (q | q+1) and an
    even last plane with no plane after it (taps k0 | k1 only)."""
    w0, w1, w2 = weight.unbind(2)
    return tuple(_phase_weights(torch.cat(pair, 1)) for pair in ((w0, w1 + w2), (w0 + w1, w2), (w0, w1)))


def _conv3d_up2(x: Tensor, weight: Tensor, bias: Tensor | None, planes: int) -> Tensor:
    """Flat 'same' conv3x3x3 of the nearest x2 upsampling of x (N, Dl, C, h, w), cropped to ``planes``.

    Upsampled plane 2q reads input planes q-1 | q, plane 2q+1 reads q | q+1: both are runs of ONE set of
    padded plane pairs (pair j = planes j-1 | j), and each phase conv writes straight into its planes and
    pixels of the output."""
    n, dl, c, h, w = x.shape
    if planes not in (2 * dl - 1, 2 * dl):
        raise ValueError(f"x2 upsampling of {dl} planes cannot give {planes}")
    even_w, odd_w, last_w = derived(weight, "up2-phases", _up2_phases)
    b4 = None if bias is None else derived(bias, "x4", _repeat4)
    co = weight.shape[0]
    pairs = _plane_pairs(x, -1, dl + 1)
    out = _empty_nhwc(n, planes, co, 2 * h, 2 * w, x)

    def run(first: int, count: int, wts: Tensor, dst: Tensor) -> None:
        if count:
            y = conv2d(_planes_batch(pairs[:, first : first + count]), wts, b4)
            _interleave_into(dst, y.unflatten(0, (count, n)).transpose(0, 1))

    odd_last = planes % 2  # the last plane is even and has no plane after it
    run(0, dl - odd_last, even_w, out[:, 0 : 2 * (dl - odd_last) : 2])
    if odd_last:
        run(dl - 1, 1, last_w, out[:, planes - 1 :])
    run(1, planes // 2, odd_w, out[:, 1::2])
    return out.flatten(0, 1)


def _up2_taps_as_outputs(weight: Tensor) -> Tensor:
    """Phase weights (5 * 4C', C, 2, 2) of :func:`conv3d_up2_few_outputs`: per input plane q the five
    tap sums it takes part in, as output blocks: [k0] for even plane 2(q+1), [k1+k2] for even plane 2q,
    [k0+k1] for odd plane 2q+1, [k2] for odd plane 2q-1, and [k1] for an even last plane with no plane
    after it."""
    w0, w1, w2 = weight.unbind(2)
    return torch.cat([_phase_weights(k) for k in (w0, w1 + w2, w0 + w1, w2, w1)])


def _up2_taps_bias(bias: Tensor) -> Tensor:
    """The bias of those blocks: on the three of which every plane takes exactly one."""
    b = bias.new_zeros(5, 4, bias.shape[0])
    b[[1, 2, 4]] = bias
    return b.flatten()


def conv3d_up2_few_outputs(x: Tensor, weight: Tensor, bias: Tensor | None, planes: int) -> Tensor:
    """``conv_nd_up2(x, weight, bias, planes)`` for a 'same' conv3x3x3 with few output channels (the
    read-out of a path that ends at level 1), flat (N * planes, C', 2h, 2w).

    One phase conv of every coarse plane with all the plane-tap sums it takes part in as output channels
    (:func:`_up2_taps_as_outputs`), then each fine plane adds the two that read it. With C' = 1 the
    stacked pairs' phase conv has 4 output channels, where oneDNN runs at a tenth of its rate; this
    conv has 20 and reads C instead of 2C channels. Sums in another order: within float rounding of
    :func:`conv_nd_up2`, for a result no neuron thresholds."""
    n, dl, c, h, w = x.shape
    if weight.dim() != 5 or weight.shape[2:] != (3, 3, 3):
        raise ValueError("conv3d_up2_few_outputs takes a 3x3x3 weight")
    if planes not in (2 * dl - 1, 2 * dl):
        raise ValueError(f"x2 upsampling of {dl} planes cannot give {planes}")
    co = weight.shape[0]
    wts = derived(weight, "up2-taps-out", _up2_taps_as_outputs)
    b = None if bias is None else derived(bias, "up2-taps-bias", _up2_taps_bias)
    y = conv2d(_padded_nhwc(x.flatten(0, 1)), wts, b)
    y = y.unflatten(0, (n, dl)).unflatten(2, (5, 4 * co))  # (N, Dl, tap sum, 4C', h+1, w+1)
    n_even, n_odd = (planes + 1) // 2, planes // 2
    even = y[:, :n_even, 1].clone()
    if planes % 2:  # the last plane is even and has no plane after it: tap sum k1 instead of k1 + k2
        even[:, -1] = y[:, n_even - 1, 4]
    if n_even > 1:
        even[:, 1:] += y[:, : n_even - 1, 0]
    odd = y[:, :n_odd, 2].clone()
    if dl > 1:
        odd[:, : dl - 1] += y[:, 1:n_odd + 1, 3][:, : dl - 1]
    out = _empty_nhwc(n, planes, co, 2 * h, 2 * w, x)
    _interleave_into(out[:, 0::2], even)
    if n_odd:
        _interleave_into(out[:, 1::2], odd)
    return out.flatten(0, 1)


def upsample2(x: Tensor, planes: int | None = None) -> Tensor:
    """Nearest x2 upsampling: (N, C, h, w) -> (N, C, 2h, 2w), or (N, D, C, h, w) -> (N, planes, C, 2h, 2w).
    3-D: one copy, channels innermost in memory as the 3-D layers read it."""
    if x.dim() == 4:
        return F.interpolate(x, scale_factor=2, mode="nearest")
    n, d, c, h, w = x.shape
    planes = 2 * d if planes is None else planes
    v = x.movedim(2, -1)[:, :, None, :, None, :, None]  # (N, D, 1, h, 1, w, 1, C)
    out = v.expand(n, d, 2, h, 2, w, 2, c).reshape(n, 2 * d, 2 * h, 2 * w, c)[:, :planes]
    return out.permute(0, 1, 4, 2, 3)


def conv_nd_up2(x: Tensor, weight: Tensor, bias: Tensor | None, planes: int | None = None) -> Tensor:
    """``conv_nd(upsample2(x, planes), weight, bias)`` (stride 1, 'same') without upsampling the input."""
    k = weight.shape[-1]
    if weight.dim() == 4:
        if k == 1:
            return upsample2(conv2d(x, weight, bias))
        return _conv2d_up2(x, weight, bias)
    if k == 1:
        y = conv2d(x.flatten(0, 1), derived(weight, "k1", _squeeze_planes), bias).unflatten(0, x.shape[:2])
        return upsample2(y, planes).flatten(0, 1)
    return _conv3d_up2(x, weight, bias, planes)


def _run_bn(bn: nn.Module, y: Tensor) -> Tensor:
    """Apply an op's BN module to a flat (M, C, H, W) current (a BatchNorm3d sees it as (M, C, 1, H, W),
    which has the statistics of the (N, C, D, H, W) volume)."""
    if isinstance(bn, nn.BatchNorm3d):
        return bn(y.unsqueeze(2)).squeeze(2)
    return bn(y)


def call_forward_hooks(module: nn.Module, inputs: tuple, output: Tensor) -> None:
    """Run `module`'s forward hooks as if it had been called (the fused paths never call it)."""
    hooks = module._forward_hooks
    if not hooks:
        return
    with_kwargs = module._forward_hooks_with_kwargs
    for hook_id, hook in list(hooks.items()):
        if hook_id in with_kwargs:
            hook(module, inputs, {}, output)
        else:
            hook(module, inputs, output)


def _fold_cat(ops: Sequence[ConvBN]) -> tuple[Tensor, Tensor]:
    """The eval-mode BN-folded weights and biases of ``ops``, concatenated along output channels."""
    weights, biases = zip(*(op.folded() for op in ops))
    if len(ops) == 1:
        return weights[0], biases[0]
    return torch.cat(weights), torch.cat(biases)


def conv_currents(ops: Sequence[ConvBN], x: Tensor, *, stride: int | None = None, up2: bool = False,
                  planes: int | None = None) -> list[Tensor]:
    """The current of each op in `ops` on the common input `x`, computed by one convolution.

    All ops share dim, kernel, stride and padding; ``stride`` overrides the ops' stride (a stem whose
    output is only read at a coarser level computes just those positions). ``up2``: the ops read the
    nearest x2 upsampling of `x` (to ``planes`` disparity planes in 3-D), computed without building it.
    Returns tensors in the input's layout family:
    (N, C', H', W') for 2-D, (N, D, C', H, W) for 3-D. BN in training mode is applied per op on its
    slice (each op keeps its own running statistics); in eval mode it is folded into the fused conv.
    """
    first = ops[0]
    for op in ops[1:]:
        if (op.dim, op.kernel, op.stride, op.padding) != (first.dim, first.kernel, first.stride,
                                                          first.padding):
            raise ValueError("conv_currents needs ops of one dim, kernel, stride and padding")
    sizes = [op.out_channels for op in ops]
    train_bn = any(_bn_trains(op.bn) for op in ops)
    if train_bn:
        weights = [op.conv.weight for op in ops]
        biases = [op.conv.bias for op in ops]
        bias = None if all(b is None for b in biases) else torch.cat(
            [b if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases)]
        )
        weight = torch.cat(weights) if len(weights) > 1 else weights[0]
    else:
        weight, bias = prepared(first, f"folded{len(ops)}:" + ",".join(str(id(op)) for op in ops),
                                [t for op in ops for t in _sources(op)], lambda: _fold_cat(ops))
    if up2:
        if first.stride != 1 or first.padding != first.kernel // 2 or (stride or 1) != 1:
            raise ValueError("up2 needs stride 1 'same' convolutions")
        y = conv_nd_up2(x, weight, bias, planes)
    else:
        y = conv_nd(x, weight, bias, stride=first.stride if stride is None else stride, padding=first.padding)
    chunks = list(y.split(sizes, dim=1)) if len(ops) > 1 else [y]
    if any(op.conv._forward_hooks for op in ops):
        seen = upsample2(x, planes) if up2 else x
        for op, chunk in zip(ops, chunks):
            call_forward_hooks(op.conv, (seen,), chunk)
    if train_bn:
        chunks = [_run_bn(op.bn, c) for op, c in zip(ops, chunks)]
    if first.dim == 3:
        chunks = [c.unflatten(0, (x.shape[0], -1)) for c in chunks]
    return chunks


def _skip_connect(c_in: int, c_out: int, *, dim: int = 2, external: bool = False) -> nn.Module:
    if external:
        return ConvBN(c_in, c_out, 1, dim)
    if c_in != c_out:
        raise ValueError(f"skip_connect between nodes needs equal widths, got {c_in} -> {c_out}")
    return nn.Identity()


def _snn_conv(c_in: int, c_out: int, *, dim: int = 2, external: bool = False) -> nn.Module:
    del external  # a conv aligns widths by itself
    return ConvBN(c_in, c_out, 3, dim)


@dataclass(frozen=True)
class OpSpec:
    """One entry of the op table.

    ``build(c_in, c_out, *, dim, external)`` returns a module mapping an input to the op's current.
    ``temperature``: the Dspike temperature the op asks of the neuron integrating its current (None: the
    op has no say, e.g. a skip). ``fusable``: the ConvBN modules the op builds may be run in one
    convolution with the other ConvBNs of a cell that read the same input (:func:`conv_currents`);
    anything else an op builds is simply called.
    """

    name: str
    build: Callable[..., nn.Module]
    temperature: float | None = None
    fusable: bool = False

    def __call__(self, c_in: int, c_out: int, *, dim: int = 2, external: bool = False) -> nn.Module:
        return self.build(c_in, c_out, dim=dim, external=external)


def _table(*specs: OpSpec) -> Mapping[str, OpSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


OPS: Mapping[str, OpSpec] = _table(  # the order is the op index of the published logs: keep it
    OpSpec("skip_connect", _skip_connect, temperature=None, fusable=True),
    OpSpec("snn_b3", _snn_conv, temperature=3.0, fusable=True),
    OpSpec("snn_b5", _snn_conv, temperature=5.0, fusable=True),
)
"""The op vocabulary of eventstereo and nas: name -> :class:`OpSpec`."""

PRIMITIVES: tuple[str, ...] = tuple(OPS)
"""Op names in table order: index i is op i of the published genotype logs."""

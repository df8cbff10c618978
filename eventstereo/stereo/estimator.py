"""Sub-pixel MAP disparity estimator (Practical Deep Stereo, REFERENCE §7).

Soft-argmin over all planes is biased towards the middle of the range when the distribution is
multi-modal; the MAP estimator first picks the best plane and only averages its neighbourhood, so a
second mode far away cannot pull the estimate.

Two implementations of one function: the torch one (any device, differentiable) and, for CPU inference
(no gradient wanted), a numba kernel that does argmax and window softmax in one pass over each pixel's
planes. The torch path's argmax over a (64, 260, 346) cost alone takes 8-10 ms and its gather, mask and
softmax allocate five more window-sized tensors; the kernel reads the cost once, in place, and is the
same function within float rounding (ties pick the first plane in both).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from eventstereo.snn.fused import exp_neg, run_parallel

IMPLS = ("auto", "torch", "numba")
_BLOCK = 128  # pixels per argmax-then-window block of the numba kernel


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy", fastmath=True)
def _map_kernel(cost, width, disparities, radius, out, start, stop):  # pragma: no cover - compiled
    """cost (R, W', D) C-contiguous, of which columns [0, width) are read (a cropped cost is read in
    place), disparities (D,) float64, out (R, width): MAP disparity of the pixels [start, stop) in
    row-major order.

    fastmath lets LLVM vectorise the max and the first-index search (two passes over a pixel's planes
    in L1 beat one branchy argmax); a NaN cost then gives an unspecified (but in-range) plane, not NaN.
    Both need the planes of a pixel contiguous in a C-contiguous array (numba layout 'C'): handing the
    kernel the cropped view itself (layout 'A') measured about 10 % slower at 346x260x64. Pixels go in
    blocks, first every argmax, then every window: each pixel's window depends on its own argmax, and
    one pixel at a time left the core waiting on that chain (1.5x slower at 24 and at 64 planes). The
    row and column step from pixel to pixel: dividing them out of the pixel index (two integer divisions
    per pixel) took a third of the kernel's time at 24 planes.
    """
    n_planes = cost.shape[2]
    bests = np.empty(_BLOCK, np.int64)
    tops = np.empty(_BLOCK, np.float64)
    for p0 in range(start, stop, _BLOCK):
        p1 = min(stop, p0 + _BLOCK)
        i0, x0 = divmod(p0, width)
        i, x = i0, x0
        for p in range(p0, p1):  # the best plane of each pixel of the block
            row = cost[i, x]
            top = row[0]
            for k in range(1, n_planes):
                top = max(row[k], top)
            best = n_planes - 1
            for k in range(n_planes):
                best = min(best, k if row[k] == top else n_planes - 1)
            bests[p - p0] = best
            tops[p - p0] = top
            x += 1
            if x == width:
                i, x = i + 1, 0
        i, x = i0, x0
        for p in range(p0, p1):  # then their windows: no pixel waits for its own argmax
            row = cost[i, x]
            best, top = bests[p - p0], tops[p - p0]
            lo = max(0, best - radius)
            hi = min(n_planes, best + radius + 1)
            num = 0.0
            den = 0.0
            for k in range(lo, hi):
                e = exp_neg(top - np.float64(row[k]))  # exp(c_k - max), to ~3e-10 relative
                den += e
                num += e * disparities[k]
            out[i, x] = num / den
            x += 1
            if x == width:
                i, x = i + 1, 0


def _map_torch(cost: torch.Tensor, disparities: torch.Tensor, radius: int) -> torch.Tensor:
    n_planes = cost.shape[-3]
    best = cost.argmax(dim=-3, keepdim=True)  # (..., 1, H, W)
    offsets = torch.arange(-radius, radius + 1, device=cost.device).view(-1, 1, 1)
    idx = best + offsets  # (..., 2r+1, H, W)
    valid = (idx >= 0) & (idx < n_planes)
    idx = idx.clamp(0, n_planes - 1)
    window = cost.gather(-3, idx).masked_fill(~valid, float("-inf"))
    weights = torch.softmax(window, dim=-3)
    return (weights * disparities[idx]).sum(dim=-3)


def _uncropped(image: torch.Tensor) -> torch.Tensor:
    """(H, W, D) -> a C-contiguous (H, W', D) over the same memory whose first W columns are ``image``:
    a column crop of a contiguous (H', W', D) tensor (the model's padded, cropped cost) read in place.
    A copy where ``image`` is not such a crop."""
    h, w, d = image.shape
    sy = image.stride(0)
    if image.stride(2) != 1 or image.stride(1) != d or sy % d or sy < w * d:
        return image.contiguous()
    full = sy // d
    end = image.storage_offset() + h * sy  # one past the last element the full rows would cover
    if end * image.element_size() > image.untyped_storage().nbytes():
        return image.contiguous()
    return image.as_strided((h, full, d), (sy, d, 1))


def _map_numba(cost: torch.Tensor, disparities: torch.Tensor, radius: int) -> torch.Tensor:
    planes_last = cost.detach().movedim(-3, -1)  # (..., H, W, D): a view, contiguous for channels-last
    lead, (h, w, n_planes) = planes_last.shape[:-3], planes_last.shape[-3:]
    images = planes_last.reshape(-1, h, w, n_planes)  # a view for a batch of cropped channels-last costs
    out = torch.empty(images.shape[:3], dtype=cost.dtype)
    disp = disparities.detach().to(torch.float64).numpy()
    for image, dst in zip(images, out):
        run_parallel(_map_kernel, h * w, n_planes, _uncropped(image).numpy(), w, disp, radius, dst.numpy())
    return out.view(*lead, h, w)


def _numba_applies(cost: torch.Tensor) -> bool:
    return (cost.device.type == "cpu" and cost.dtype in (torch.float32, torch.float64)
            and not (cost.requires_grad and torch.is_grad_enabled()))


def subpixel_map(
    cost: torch.Tensor, disparities: torch.Tensor | None = None, radius: int = 2, *, impl: str = "auto"
) -> torch.Tensor:
    """Disparity (..., H, W) from a matching cost (..., D, H, W), higher = more likely.

    ``k* = argmax_k cost_k``; a softmax over the planes ``k* - radius .. k* + radius`` that exist
    (planes outside the range are ignored) weights their disparities ``disparities[k]``
    (default ``0..D-1``). Differentiable with respect to ``cost`` inside the window. ``impl``: "auto"
    takes the fused numba kernel for CPU float inference (no gradient) and torch otherwise.
    """
    if cost.dim() < 3:
        raise ValueError(f"cost must be (..., D, H, W), got shape {tuple(cost.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if impl not in IMPLS:
        raise ValueError(f"subpixel_map impl must be one of {IMPLS}, not {impl!r}")
    n_planes = cost.shape[-3]
    if disparities is None:
        disparities = torch.arange(n_planes, device=cost.device, dtype=cost.dtype)
    else:
        disparities = torch.as_tensor(disparities, device=cost.device, dtype=cost.dtype)
        if disparities.shape != (n_planes,):
            raise ValueError(f"disparities must have shape ({n_planes},), got {tuple(disparities.shape)}")
    use_numba = _numba_applies(cost) if impl == "auto" else impl == "numba"
    if use_numba:
        if not _numba_applies(cost):
            raise ValueError("the numba MAP kernel needs a CPU float32/float64 cost without gradient")
        return _map_numba(cost, disparities, radius)
    return _map_torch(cost, disparities, radius)

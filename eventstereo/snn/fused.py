"""Fused multi-step LIF / ALIF recurrences for training and fast streaming.

The plain eager loop records about seven autograd nodes per time step and keeps three full-size
tensors per step for backward. The functions here run the whole sequence [T, ...] in one autograd node
that saves only the input current (alive anyway in a network) and the initial state, and recomputes the
membrane potentials and spikes inside backward, writing them straight into the gradient buffer, so
backward allocates nothing beyond the gradient it returns.

Two implementations of the same arithmetic:
- ``numba``: CPU kernels, float32/float64, the five built-in surrogates; each element's recurrence runs
  in registers over chunks of 1024 elements, one pass over memory per sweep. Large inputs are split
  across ``torch.get_num_threads()`` threads of a plain thread pool (the kernels release the GIL): numba's
  own OpenMP pool would be a second OpenMP runtime next to torch's, whose spinning workers fight torch's
  for the cores between every conv and neuron.
- ``torch``: the same algorithm with in-place torch ops, for any device and dtype (CUDA, bfloat16) and
  for user-defined surrogates.
``impl="auto"`` picks numba where it applies.

Inference (no gradient wanted) has its own entry points, :func:`lif_sequence_` and
:func:`alif_sequence_`: no autograd node, and the state tensors are updated IN PLACE (a streaming
network calls its 24 neurons once per window; cloning their state cost as much as the kernels). The
numba kernels already work in place; the torch algorithm (any device: the CUDA path) does too, with a
fixed number of kernels per step and no allocation, so a CUDA graph can capture it. Both compute the
training path's forward bit for bit. The forward arithmetic is the eager neuron's, operation
by operation and in the input's dtype, so spikes (a discontinuous function of the potential) match the
eager loop exactly, not just within a tolerance; gradients match within float rounding.

torch.compile is not used: on CPU it needs a C++ toolchain and tens of seconds of compilation, and it
specialises on tau / theta, which TPS changes during training; the numba kernels compile once (cached
on disk) and take these as arguments.

Recurrences (REFERENCE §4), state h = potential after reset:
  LIF:  u_t = tau h_{t-1} + I_t ; s_t = H(u_t - theta) ; h_t = u_t (1 - s_t)
  ALIF: a_t = rho a_{t-1} + s_{t-1} ; theta_t = theta + beta a_t ; u, s, h as LIF with theta_t
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
from torch import Tensor

from eventstereo.snn.surrogates import Surrogate

__all__ = ["lif_sequence", "alif_sequence", "lif_sequence_", "alif_sequence_", "numba_applicable", "IMPLS",
           "run_parallel", "exp_neg"]

IMPLS = ("auto", "numba", "torch")
_CHUNK = 1024  # elements per parallel work item: T x 1024 floats stay in cache between sweeps


# ----------------------------------------------------------------------------------------- numba kernels
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453


@numba.njit(nogil=True, cache=True, inline="always", error_model="numpy")
def exp_neg(y):  # pragma: no cover - compiled
    """exp(-y) for y >= 0 to ~3e-10 relative: 2^-k times a degree-8 Taylor series on |r| <= ln2 / 2.

    libm's tanh/exp cost ~15x more per element in these loops; below exp(-40) ~ 4e-18 returns 0, which
    only drops gradient contributions far below float rounding of the surrogate's peak.
    """
    if y > 40.0:
        return 0.0
    k = int(y * _LOG2E + 0.5)
    r = y - k * _LN2
    p = 1.0 - r * (1.0 - r * (1.0 / 2 - r * (1.0 / 6 - r * (1.0 / 24 - r * (1.0 / 120 - r * (
        1.0 / 720 - r * (1.0 / 5040 - r * (1.0 / 40320))))))))
    return p / float(1 << k)


@numba.njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _surrogate_grad_(code, temp, scale, d):  # pragma: no cover - compiled
    """Replace each x in d (x = u - theta) by the surrogate derivative at x, computed in float64; as in
    eventstereo.snn.surrogates, with 1 - tanh^2(z) = 4q / (1 + q)^2, q = exp(-2|z|), and
    sig(z)(1 - sig(z)) = q / (1 + q)^2, q = exp(-|z|). One tight loop per formula, so LLVM vectorises it.
    """
    n = d.shape[0]
    if code == 0:  # dspike; scale = b / (2 tanh(b / 2))
        for j in range(n):
            x = d[j]
            q = exp_neg(2.0 * temp * abs(x))
            v = scale * 4.0 * q / ((1.0 + q) * (1.0 + q))
            d[j] = v if abs(x) < 0.5 else 0.0
    elif code == 1:  # triangle
        for j in range(n):
            d[j] = max(temp - abs(d[j]), 0.0) / (temp * temp)
    elif code == 2:  # superspike
        for j in range(n):
            v = 1.0 + temp * abs(d[j])
            d[j] = 1.0 / (v * v)
    elif code == 3:  # arctan
        for j in range(n):
            z = (math.pi * temp / 2.0) * d[j]
            d[j] = (temp / 2.0) / (1.0 + z * z)
    else:  # sigmoid
        for j in range(n):
            q = exp_neg(temp * abs(d[j]))
            d[j] = temp * q / ((1.0 + q) * (1.0 + q))


# The kernels walk element chunks [lo, hi) and, inside a chunk, time; the innermost loops run over 1-D
# row slices of the chunk (LLVM vectorises those; the same loops over 2-D indices it does not).
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lif_fwd_nb(I, h, tau, theta, S, start, stop):  # pragma: no cover - compiled
    """I (T, N) -> S (T, N); h (N,) holds h_0 on entry and h_T on exit. Returns the number of spikes
    of elements [start, stop) (what a firing-rate probe would otherwise sum again)."""
    T = I.shape[0]
    count = 0
    for lo in range(start, stop, _CHUNK):
        hi = min(stop, lo + _CHUNK)
        hc = h[lo:hi]
        for t in range(T):
            it = I[t, lo:hi]
            st = S[t, lo:hi]
            for j in range(hi - lo):
                u = tau * hc[j] + it[j]
                fired = u - theta > 0
                st[j] = 1 if fired else 0
                hc[j] = 0 if fired else u
                count += 1 if fired else 0
    return count


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lif_bwd_nb(I, h0, gS, ghT, tau, theta, code, temp, scale, gI, gh, start, stop):  # pragma: no cover
    """Recompute u_t into gI, then sweep back in place; gh (N,) receives d loss / d h_0.

    Spikes are recomputed from u_t with the forward's arithmetic (bitwise the same), so backward reads
    neither S nor a mask. A chunk's T rows of u stay in cache between the two sweeps.
    """
    T = I.shape[0]
    d = np.empty(_CHUNK, dtype=I.dtype)  # surrogate derivatives of one row, in the input precision
    for lo in range(start, stop, _CHUNK):
        hi = min(stop, lo + _CHUNK)
        n = hi - lo
        g = gh[lo:hi]  # running h during the recompute sweep, then d loss / d h_t
        g[:] = h0[lo:hi]
        for t in range(T):
            it = I[t, lo:hi]
            ut = gI[t, lo:hi]
            for j in range(n):
                u = tau * g[j] + it[j]
                ut[j] = u
                g[j] = 0 if u - theta > 0 else u
        if ghT.shape[0]:
            g[:] = ghT[lo:hi]
        else:
            g[:] = 0
        dc = d[:n]
        for t in range(T - 1, -1, -1):
            ut = gI[t, lo:hi]
            gst = gS[t, lo:hi]
            for j in range(n):
                dc[j] = ut[j] - theta
            _surrogate_grad_(code, temp, scale, dc)
            for j in range(n):
                u = ut[j]
                gx = (gst[j] - g[j] * u) * dc[j]
                gu = gx if u - theta > 0 else g[j] + gx
                ut[j] = gu
                g[j] = tau * gu


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _alif_fwd_nb(I, h, a, sp, tau, theta, beta, rho, S, start, stop):  # pragma: no cover - compiled
    """As _lif_fwd_nb with the adaptive threshold; h, a, sp (last spikes) are updated in place."""
    T = I.shape[0]
    count = 0
    for lo in range(start, stop, _CHUNK):
        hi = min(stop, lo + _CHUNK)
        hc = h[lo:hi]
        ac = a[lo:hi]
        sc = sp[lo:hi]
        for t in range(T):
            it = I[t, lo:hi]
            st = S[t, lo:hi]
            for j in range(hi - lo):
                av = rho * ac[j] + sc[j]
                ac[j] = av
                u = tau * hc[j] + it[j]
                fired = u - (theta + beta * av) > 0
                st[j] = 1 if fired else 0
                sc[j] = 1 if fired else 0
                hc[j] = 0 if fired else u
                count += 1 if fired else 0
    return count


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _alif_bwd_nb(I, h0, a0, s0, gS, ghT, gaT, tau, theta, beta, rho, code, temp, scale,
                 gI, A, gh, ga, gs, start, stop):  # pragma: no cover - compiled
    """Recompute u_t (into gI), a_t (into A) and the spikes, then sweep back; gh, ga, gs receive the
    gradients of the initial state h_0, a_0, s_0."""
    T = I.shape[0]
    d = np.empty(_CHUNK, dtype=I.dtype)
    for lo in range(start, stop, _CHUNK):
        hi = min(stop, lo + _CHUNK)
        n = hi - lo
        g = gh[lo:hi]  # running h, then d loss / d h_t
        gac = ga[lo:hi]  # running a, then d loss / d a_0
        gsc = gs[lo:hi]  # running last spikes, then d loss / d a_{t+1}, finally d loss / d s_0
        g[:] = h0[lo:hi]
        gac[:] = a0[lo:hi]
        gsc[:] = s0[lo:hi]
        for t in range(T):
            it = I[t, lo:hi]
            ut = gI[t, lo:hi]
            at = A[t, lo:hi]
            for j in range(n):
                av = rho * gac[j] + gsc[j]
                at[j] = av
                gac[j] = av
                u = tau * g[j] + it[j]
                ut[j] = u
                fired = u - (theta + beta * av) > 0
                g[j] = 0 if fired else u
                gsc[j] = 1 if fired else 0
        if ghT.shape[0]:
            g[:] = ghT[lo:hi]
        else:
            g[:] = 0
        gsc[:] = 0  # a_{T+1} is not computed here
        dc = d[:n]
        for t in range(T - 1, -1, -1):
            ut = gI[t, lo:hi]
            at = A[t, lo:hi]
            gst = gS[t, lo:hi]
            for j in range(n):
                dc[j] = ut[j] - (theta + beta * at[j])
            _surrogate_grad_(code, temp, scale, dc)
            last = t == T - 1 and gaT.shape[0] > 0
            for j in range(n):
                u = ut[j]
                gan = gsc[j]
                gx = (gst[j] + gan - g[j] * u) * dc[j]
                gu = gx if u - (theta + beta * at[j]) > 0 else g[j] + gx
                ut[j] = gu
                g[j] = tau * gu
                gat = rho * gan - beta * gx
                gsc[j] = gat + gaT[lo + j] if last else gat  # d loss / d a_t, the "a_{t+1}" of step t - 1
        for j in range(n):
            gac[j] = rho * gsc[j]  # a_1 = rho a_0 + s_0; gsc already holds d loss / d a_1 = d loss / d s_0


# ------------------------------------------------------------------------------------------- helpers
def _scalar(value: float, dtype: torch.dtype):
    """Scalars in the array's precision, so numba's arithmetic rounds like torch's."""
    return np.float32(value) if dtype == torch.float32 else np.float64(value)


def _dspike_scale(temp: float) -> float:
    return temp / (2.0 * math.tanh(temp / 2.0))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


_MIN_WORK = 1 << 20  # elements x steps per extra thread (~1 ms of work): below, handing off costs more
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _reset_pool_after_fork() -> None:
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_parallel(kernel, n: int, steps: int, *args) -> list:
    """Run ``kernel(*args, start, stop)`` over element range [0, n), split across up to torch's thread
    count (see below for when it is not split); returns what the pieces returned, in element order.

    The kernels are serial and release the GIL; a plain thread pool runs the pieces. This keeps a
    second OpenMP runtime (numba's) out of the process: its spinning workers would compete with
    torch's for the cores between every conv and neuron.

    The pool only gets cores that torch's OpenMP team leaves free: after each parallel region (every
    conv) torch's idle workers spin for a few milliseconds, so a pool thread sent to a core that one
    of them holds waits its turn, and the caller waits for that piece. Measured on the demo window at
    2 torch threads on 2 cores (issue 15; paired in-process rounds): the MAP kernel right after a conv
    took 10.7 ms split in two against 6.2 ms in one piece (3.7 ms split, with no conv before it). On
    the whole window, one piece against two gave 1.10x, 1.01x, 1.04x and 0.99x in four paired runs
    of 20-30 rounds each (the machine's noise is of the same size); pieces claimed from a shared
    queue, so that the caller never waits for a piece not yet begun, gave 1.04x in the first run.
    """
    threads = torch.get_num_threads()
    workers = max(1, min(threads, _cpus() - threads + 1, (n * steps) // _MIN_WORK, -(-n // _CHUNK)))
    if workers == 1:
        return [kernel(*args, 0, n)]
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers - 1:
            # a smaller old pool is dropped, not shut down: a concurrent caller may still be submitting to
            # it; its idle workers exit when it is garbage-collected
            _pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="eventstereo-snn")
            _pool_size = workers - 1
        pool = _pool
    per = -(-n // workers)
    per = -(-per // _CHUNK) * _CHUNK  # chunk-aligned pieces
    bounds = [(lo, min(n, lo + per)) for lo in range(0, n, per)]
    futures = [pool.submit(kernel, *args, lo, hi) for lo, hi in bounds[1:]]
    first = kernel(*args, *bounds[0])
    return [first] + [f.result() for f in futures]


def _opt_flat(g: Tensor | None) -> Tensor | None:
    return None if g is None else g.reshape(-1).contiguous()


def _np_opt(g: Tensor | None, like: Tensor) -> np.ndarray:
    """An absent gradient as an empty array (the kernels read it as zeros), saving a full-size buffer."""
    if g is not None:
        return _np(g)
    return np.empty(0, dtype=np.float32 if like.dtype == torch.float32 else np.float64)


def numba_applicable(x: Tensor, surrogate: Surrogate) -> bool:
    """True where the numba kernels compute exactly what the eager neuron computes."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and type(surrogate).numba_code is not None
    )


def _choose(impl: str, x: Tensor, surrogate: Surrogate) -> str:
    if impl not in IMPLS:
        raise ValueError(f"fused impl must be one of {IMPLS}, not {impl!r}")
    if impl == "auto":
        return "numba" if numba_applicable(x, surrogate) else "torch"
    if impl == "numba" and not numba_applicable(x, surrogate):
        raise ValueError("numba impl needs a CPU float32/float64 input and a built-in surrogate")
    return impl


def _flat(x: Tensor, T: int) -> Tensor:
    return x.reshape(T, -1).contiguous()


# -------------------------------------------------------------------------------- torch implementation
def _lif_fwd_torch(I: Tensor, h: Tensor, tau: float, theta: float, S: Tensor) -> Tensor:
    for t in range(I.shape[0]):
        u = h.mul(tau).add_(I[t])  # same two roundings as the eager `tau * h + I`
        mask = (u - theta) > 0
        S[t].copy_(mask)
        h = u.masked_fill_(mask, 0)
    return h


def _lif_bwd_torch(I, S, h0, gS, ghT, tau, theta, surrogate_cls, temp):
    T = I.shape[0]
    gI = torch.empty_like(I)
    h = h0
    fired = S != 0
    for t in range(T):
        u = h.mul(tau).add_(I[t])
        gI[t].copy_(u)
        h = u.masked_fill_(fired[t], 0)
    g = ghT if ghT is not None else torch.zeros_like(h0)
    for t in range(T - 1, -1, -1):  # surrogate per step: N-sized temporaries, not T x N
        gx = (gS[t] - g * gI[t]).mul_(surrogate_cls.derivative(gI[t] - theta, temp))
        gu = g.masked_fill(fired[t], 0).add_(gx)
        gI[t].copy_(gu)
        g = gu.mul_(tau)
    return gI, g


def _alif_fwd_torch(I, h, a, sp, tau, theta, beta, rho, S):
    for t in range(I.shape[0]):
        a = a.mul(rho).add_(sp)
        thr = a.mul(beta).add_(theta)
        u = h.mul(tau).add_(I[t])
        mask = (u - thr) > 0
        S[t].copy_(mask)
        sp = S[t]
        h = u.masked_fill_(mask, 0)
    return h, a


def _alif_bwd_torch(I, S, h0, a0, s0, gS, ghT, gaT, tau, theta, beta, rho, surrogate_cls, temp):
    T = I.shape[0]
    gI = torch.empty_like(I)
    X = torch.empty_like(I)
    fired = S != 0
    h, a, sp = h0, a0, s0
    for t in range(T):
        a = a.mul(rho).add_(sp)
        u = h.mul(tau).add_(I[t])
        gI[t].copy_(u)
        torch.sub(u, a.mul(beta).add_(theta), out=X[t])
        sp = S[t]
        h = u.masked_fill_(fired[t], 0)
    g = ghT if ghT is not None else torch.zeros_like(h0)
    gan = torch.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        gx = (gS[t] + gan - g * gI[t]).mul_(surrogate_cls.derivative(X[t], temp))
        gu = g.masked_fill(fired[t], 0).add_(gx)
        gI[t].copy_(gu)
        g = gu.mul(tau)
        gat = gan.mul(rho).sub_(gx, alpha=beta)
        if t == T - 1 and gaT is not None:
            gat = gat.add_(gaT)
        gan = gat
    return gI, g, gan.mul(rho), gan


def _lif_fwd_torch_(I: Tensor, h: Tensor, tau: float, theta: float, S: Tensor) -> None:
    """In place: h (N,) from h_0 to h_T, S[t] the spikes. Four kernels per step, nothing allocated; the
    roundings of the eager ``tau * h + I``, ``(u - theta) > 0`` and ``u * (1 - s)``."""
    for t in range(I.shape[0]):
        st = S[t]
        h.mul_(tau).add_(I[t])
        torch.sub(h, theta, out=st).gt_(0)
        h.addcmul_(h, st, value=-1)  # u - u*s: exactly u or 0, as u * (1 - s)


def _alif_fwd_torch_(I: Tensor, h: Tensor, a: Tensor, sp: Tensor, tau: float, theta: float, beta: float,
                     rho: float, S: Tensor) -> None:
    """In place: h, a, sp (last spikes) from step 0 to T; as _lif_fwd_torch_ with theta_t."""
    for t in range(I.shape[0]):
        st = S[t]
        a.mul_(rho).add_(sp)
        h.mul_(tau).add_(I[t])
        torch.mul(a, beta, out=st).add_(theta)  # theta_t, rounded as the eager theta + beta * a
        torch.sub(h, st, out=st).gt_(0)
        sp.copy_(st)
        h.addcmul_(h, st, value=-1)


# ------------------------------------------------------------------------------------ autograd nodes
class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, I: Tensor, h0: Tensor, tau: float, theta: float, surrogate: Surrogate, impl: str):
        T = I.shape[0]
        If = _flat(I, T)
        h0f = h0.reshape(-1)
        S = torch.empty_like(If)
        h = h0f.clone()
        if impl == "numba":
            dt = I.dtype
            run_parallel(_lif_fwd_nb, If.shape[1], T, _np(If), _np(h), _scalar(tau, dt), _scalar(theta, dt),
                         _np(S))
        else:
            h = _lif_fwd_torch(If, h, tau, theta, S)
        # the numba backward recomputes the spikes; the torch one reads them (S is an output: no extra memory)
        ctx.save_for_backward(If, h0f, *((S,) if impl == "torch" else ()))
        ctx.set_materialize_grads(False)
        ctx.params = (tau, theta, type(surrogate), surrogate.temperature, impl, I.shape, h0.shape)
        return S.view(I.shape), h.view(h0.shape)

    @staticmethod
    def backward(ctx, gS: Tensor | None, ghT: Tensor | None):
        If, h0f, *rest = ctx.saved_tensors
        tau, theta, cls, temp, impl, shape, hshape = ctx.params
        T, n = If.shape
        gSf = _flat(gS, T) if gS is not None else torch.zeros_like(If)
        ghTf = _opt_flat(ghT)
        if impl == "numba":
            dt = If.dtype
            gI = torch.empty_like(If)
            gh = torch.empty_like(h0f)
            scale = _dspike_scale(temp) if cls.numba_code == 0 else 0.0
            run_parallel(_lif_bwd_nb, n, 2 * T, _np(If), _np(h0f), _np(gSf), _np_opt(ghTf, If),
                 _scalar(tau, dt), _scalar(theta, dt), cls.numba_code, temp, scale, _np(gI), _np(gh))
        else:
            gI, gh = _lif_bwd_torch(If, rest[0], h0f, gSf, ghTf, tau, theta, cls, temp)
        return gI.view(shape), gh.view(hshape), None, None, None, None


class _ALIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, I, h0, a0, s0, tau, theta, beta, rho, surrogate, impl):
        T = I.shape[0]
        If = _flat(I, T)
        h0f, a0f, s0f = (v.reshape(-1) for v in (h0, a0, s0))
        S = torch.empty_like(If)
        h, a = h0f.clone(), a0f.clone()
        if impl == "numba":
            dt = I.dtype
            run_parallel(_alif_fwd_nb, If.shape[1], T, _np(If), _np(h), _np(a), _np(s0f.clone()),
                         _scalar(tau, dt), _scalar(theta, dt), _scalar(beta, dt), _scalar(rho, dt), _np(S))
        else:
            h, a = _alif_fwd_torch(If, h, a, s0f, tau, theta, beta, rho, S)
        ctx.save_for_backward(If, h0f, a0f, s0f, *((S,) if impl == "torch" else ()))
        ctx.set_materialize_grads(False)
        ctx.params = (tau, theta, beta, rho, type(surrogate), surrogate.temperature, impl, I.shape, h0.shape)
        return S.view(I.shape), h.view(h0.shape), a.view(h0.shape)

    @staticmethod
    def backward(ctx, gS, ghT, gaT):
        If, h0f, a0f, s0f, *rest = ctx.saved_tensors
        tau, theta, beta, rho, cls, temp, impl, shape, hshape = ctx.params
        T, n = If.shape
        gSf = _flat(gS, T) if gS is not None else torch.zeros_like(If)
        ghTf, gaTf = _opt_flat(ghT), _opt_flat(gaT)
        if impl == "numba":
            dt = If.dtype
            gI = torch.empty_like(If)
            A = torch.empty_like(If)  # a_t, recomputed
            gh, ga, gs = (torch.empty_like(h0f) for _ in range(3))
            scale = _dspike_scale(temp) if cls.numba_code == 0 else 0.0
            run_parallel(_alif_bwd_nb, n, 2 * T, _np(If), _np(h0f), _np(a0f), _np(s0f), _np(gSf),
                 _np_opt(ghTf, If), _np_opt(gaTf, If), *(_scalar(v, dt) for v in (tau, theta, beta, rho)),
                 cls.numba_code, temp, scale, _np(gI), _np(A), _np(gh), _np(ga), _np(gs))
            del A
        else:
            gI, gh, ga, gs = _alif_bwd_torch(If, rest[0], h0f, a0f, s0f, gSf, ghTf, gaTf, tau, theta, beta,
                                             rho, cls, temp)
        return (gI.view(shape), gh.view(hshape), ga.view(hshape), gs.view(hshape),
                None, None, None, None, None, None)


# ------------------------------------------------------------------------------------------ public API
def lif_sequence(x: Tensor, h0: Tensor, tau: float, theta: float, surrogate: Surrogate,
                 impl: str = "auto") -> tuple[Tensor, Tensor]:
    """Run a LIF (IF: tau = 1, binary: tau = 0) over x [T, ...] from state h0 [...].

    Returns (spikes [T, ...], h_T). Differentiable in x and h0 with ``surrogate``'s derivative at its
    current temperature.
    """
    if x.dim() < 1 or x.shape[1:] != h0.shape:
        raise ValueError(f"state shape {tuple(h0.shape)} does not match input steps {tuple(x.shape[1:])}")
    return _LIFSequence.apply(x, h0.to(x.dtype), float(tau), float(theta), surrogate,
                              _choose(impl, x, surrogate))


def alif_sequence(x: Tensor, h0: Tensor, a0: Tensor, s0: Tensor, tau: float, theta: float, beta: float,
                  rho: float, surrogate: Surrogate, impl: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """Run an ALIF over x [T, ...] from state (h0, a0, s0). Returns (spikes, h_T, a_T); s_T = spikes[-1]."""
    if x.dim() < 1 or not (x.shape[1:] == h0.shape == a0.shape == s0.shape):
        raise ValueError(f"state shapes do not match input steps {tuple(x.shape[1:])}")
    return _ALIFSequence.apply(x, h0.to(x.dtype), a0.to(x.dtype), s0.to(x.dtype), float(tau), float(theta),
                               float(beta), float(rho), surrogate, _choose(impl, x, surrogate))


# ------------------------------------------------------------------------------------ inference, in place
def _inference_impl(impl: str, x: Tensor) -> str:
    if impl not in IMPLS:
        raise ValueError(f"fused impl must be one of {IMPLS}, not {impl!r}")
    numba_ok = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if impl == "numba" and not numba_ok:
        raise ValueError("numba impl needs a CPU float32/float64 input")
    return impl if impl != "auto" else ("numba" if numba_ok else "torch")


def _check_state(x: Tensor, *states: Tensor) -> None:
    for v in states:
        if v.shape != x.shape[1:] or v.dtype != x.dtype or v.device != x.device or not v.is_contiguous():
            raise ValueError(f"in-place state must be contiguous {tuple(x.shape[1:])} {x.dtype} on "
                             f"{x.device}, got {tuple(v.shape)} {v.dtype} on {v.device}")


def lif_sequence_(x: Tensor, h: Tensor, tau: float, theta: float, impl: str = "auto", *,
                  counted: bool = False) -> Tensor | tuple[Tensor, int | None]:
    """Inference LIF over x [T, ...]: returns the spikes; ``h`` (contiguous, x's shape per step, dtype and
    device) goes from h_0 to h_T in place. No autograd; the forward of :func:`lif_sequence` bit for bit.
    ``counted``: return (spikes, number of spikes), the count taken by the numba kernel as it fires
    (None from the torch implementation: counting there would cost a reduction and a sync)."""
    _check_state(x, h)
    impl = _inference_impl(impl, x)
    T = x.shape[0]
    count = None
    with torch.no_grad():
        If = _flat(x.detach(), T)
        S = torch.empty_like(If)
        hf = h.view(-1)
        if impl == "numba":
            dt = x.dtype
            count = sum(run_parallel(_lif_fwd_nb, If.shape[1], T, _np(If), _np(hf), _scalar(tau, dt),
                                     _scalar(theta, dt), _np(S)))
        else:
            _lif_fwd_torch_(If, hf, float(tau), float(theta), S)
    return (S.view(x.shape), count) if counted else S.view(x.shape)


def alif_sequence_(x: Tensor, h: Tensor, a: Tensor, s: Tensor, tau: float, theta: float, beta: float,
                   rho: float, impl: str = "auto", *, counted: bool = False
                   ) -> Tensor | tuple[Tensor, int | None]:
    """Inference ALIF over x [T, ...]: returns the spikes; h, a and s (last spikes) updated in place.
    ``counted``: as for :func:`lif_sequence_`."""
    _check_state(x, h, a, s)
    impl = _inference_impl(impl, x)
    T = x.shape[0]
    count = None
    with torch.no_grad():
        If = _flat(x.detach(), T)
        S = torch.empty_like(If)
        hf, af, sf = h.view(-1), a.view(-1), s.view(-1)
        if impl == "numba":
            dt = x.dtype
            count = sum(run_parallel(_alif_fwd_nb, If.shape[1], T, _np(If), _np(hf), _np(af), _np(sf),
                                     _scalar(tau, dt), _scalar(theta, dt), _scalar(beta, dt),
                                     _scalar(rho, dt), _np(S)))
        else:
            _alif_fwd_torch_(If, hf, af, sf, float(tau), float(theta), float(beta), float(rho), S)
    return (S.view(x.shape), count) if counted else S.view(x.shape)

"""Fused LIF/ALIF recurrences equal the plain eager loop: same spikes, gradients within float tolerance."""

import pytest
import torch

from eventstereo.snn import ALIFNode, LIFNode, make_surrogate
from eventstereo.snn import fused as F

SURROGATE_NAMES = ["dspike", "triangle", "superspike", "arctan", "sigmoid"]
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-10)}


def _inputs(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 0.6 + 0.3).to(dtype)
    return x


def _eager_lif(x, h0, tau, theta, sur):
    n = LIFNode(tau, theta, surrogate=sur, step_mode="m", backend="eager")
    n._memories["v"] = h0
    s = n(x)
    return s, n.v


def _eager_alif(x, h0, a0, s0, tau, theta, beta, rho, sur):
    n = ALIFNode(tau, theta, beta, rho, surrogate=sur, step_mode="m", backend="eager")
    n._memories.update(v=h0, a=a0, s=s0)
    s = n(x)
    return s, n.state["v"], n.state["a"]


def _leaves(*tensors):
    return [t.clone().requires_grad_() for t in tensors]


@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sur_name", SURROGATE_NAMES)
@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_lif_fused_equals_eager(impl, dtype, sur_name, tau):
    T, shape = 5, (2, 3, 7)
    x0 = _inputs((T, *shape), dtype)
    h00 = _inputs(shape, dtype, seed=1).abs() * 0.5
    gS = _inputs((T, *shape), dtype, seed=2)
    gh = _inputs(shape, dtype, seed=3)
    results = []
    for run in ("eager", "fused"):
        x, h0 = _leaves(x0, h00)
        sur = make_surrogate(sur_name, 2.5)
        if run == "eager":
            s, hT = _eager_lif(x, h0, tau, 0.5, sur)
        else:
            s, hT = F.lif_sequence(x, h0, tau, 0.5, sur, impl=impl)
        ((s * gS).sum() + (hT * gh).sum()).backward()
        results.append((s.detach(), hT.detach(), x.grad, h0.grad))
    (s_e, h_e, gx_e, gh_e), (s_f, h_f, gx_f, gh_f) = results
    assert s_f.dtype == dtype and 0 < s_e.mean() < 1
    assert torch.equal(s_e, s_f)
    torch.testing.assert_close(h_f, h_e, rtol=0, atol=0)
    torch.testing.assert_close(gx_f, gx_e, **TOL[dtype])
    torch.testing.assert_close(gh_f, gh_e, **TOL[dtype])
    assert gx_e.abs().sum() > 0


@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sur_name", ["dspike", "sigmoid", "triangle"])
def test_alif_fused_equals_eager(impl, dtype, sur_name):
    T, shape = 6, (3, 11)
    x0 = _inputs((T, *shape), dtype)
    h00 = _inputs(shape, dtype, seed=1).abs() * 0.4
    a00 = _inputs(shape, dtype, seed=4).abs()
    s00 = (_inputs(shape, dtype, seed=5) > 0).to(dtype)
    gS = _inputs((T, *shape), dtype, seed=2)
    gh, ga = _inputs(shape, dtype, seed=3), _inputs(shape, dtype, seed=6)
    args = (0.3, 0.5, 0.3, 0.6)  # tau, theta, beta, rho
    results = []
    for run in ("eager", "fused"):
        x, h0, a0, s0 = _leaves(x0, h00, a00, s00)
        sur = make_surrogate(sur_name)
        if run == "eager":
            s, hT, aT = _eager_alif(x, h0, a0, s0, *args, sur)
        else:
            s, hT, aT = F.alif_sequence(x, h0, a0, s0, *args, sur, impl=impl)
        ((s * gS).sum() + (hT * gh).sum() + (aT * ga).sum()).backward()
        results.append((s.detach(), hT.detach(), aT.detach(), x.grad, h0.grad, a0.grad, s0.grad))
    eager, fused = results
    assert torch.equal(eager[0], fused[0]) and 0 < eager[0].mean() < 1
    assert torch.equal(eager[1], fused[1]) and torch.equal(eager[2], fused[2])
    for ge, gf in zip(eager[3:], fused[3:]):
        torch.testing.assert_close(gf, ge, **TOL[dtype])
    assert eager[6].abs().sum() > 0  # the gradient reaches the initial spikes through the threshold


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_unused_outputs_and_single_step(impl):
    x0 = _inputs((1, 4, 5), torch.float32)
    for use_state in (False, True):
        outs = []
        for run in ("eager", "fused"):
            (x,) = _leaves(x0)
            h0 = torch.zeros(4, 5)
            if run == "eager":
                s, hT = _eager_lif(x, h0, 0.2, 0.5, make_surrogate("dspike"))
            else:
                s, hT = F.lif_sequence(x, h0, 0.2, 0.5, make_surrogate("dspike"), impl=impl)
            (hT.sum() if use_state else s.sum()).backward()
            outs.append(x.grad)
        torch.testing.assert_close(outs[0], outs[1])


def test_threaded_split_equals_serial(monkeypatch):
    x0 = _inputs((4, 5000), torch.float32)  # > 4 chunks
    gS = _inputs((4, 5000), torch.float32, seed=2)
    res = []
    pieces = []
    kernel = F._alif_fwd_nb

    def spy(*args):
        pieces.append(args[-2:])
        kernel(*args)

    monkeypatch.setattr(F, "_alif_fwd_nb", spy)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    monkeypatch.setattr(F, "_cpus", lambda: 8)  # cores beyond torch's three: the pool may use them
    for min_work in (1 << 40, 1):  # serial, then split across 3 threads
        monkeypatch.setattr(F, "_MIN_WORK", min_work)
        (x,) = _leaves(x0)
        s, h, a = F.alif_sequence(x, *(torch.zeros(5000) for _ in range(3)), 0.2, 0.5, 0.1, 0.5,
                               make_surrogate("dspike"), impl="numba")
        (s * gS).sum().backward()
        res.append((s, h, a, x.grad))
    assert pieces[0] == (0, 5000) and sorted(pieces[1:]) == [(0, 2048), (2048, 4096), (4096, 5000)]
    for a, b in zip(*res):
        assert torch.equal(a, b)


def test_no_split_when_torch_threads_hold_every_cpu(monkeypatch):
    pieces = []

    def kernel(start, stop):
        pieces.append((start, stop))
        return stop - start

    monkeypatch.setattr(F, "_MIN_WORK", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    for cpus, expected in ((2, [(0, 5000)]), (3, [(0, 3072), (3072, 5000)])):
        monkeypatch.setattr(F, "_cpus", lambda cpus=cpus: cpus)
        pieces.clear()
        assert sum(F.run_parallel(kernel, 5000, 1)) == 5000
        assert sorted(pieces) == expected


def test_noncontiguous_input_and_auto_choice():
    x = _inputs((6, 5, 4), torch.float32).transpose(1, 2)  # [T, 4, 5], not contiguous
    s_f, _ = F.lif_sequence(x, torch.zeros(4, 5), 0.2, 0.5, make_surrogate("dspike"))
    s_e, _ = _eager_lif(x, torch.zeros(4, 5), 0.2, 0.5, make_surrogate("dspike"))
    assert torch.equal(s_f, s_e)
    sur = make_surrogate("dspike")
    assert F._choose("auto", x, sur) == "numba"
    assert F._choose("auto", x.to(torch.bfloat16), sur) == "torch"
    with pytest.raises(ValueError, match="numba"):
        F._choose("numba", x.to(torch.bfloat16), sur)
    with pytest.raises(ValueError, match="impl"):
        F._choose("cuda", x, sur)
    with pytest.raises(ValueError, match="shape"):
        F.lif_sequence(x, torch.zeros(5, 4), 0.2, 0.5, sur)


def test_bfloat16_and_custom_surrogate_use_torch_impl():
    x = _inputs((4, 3, 8), torch.float32).to(torch.bfloat16)
    for backend in ("eager", "fused"):
        n = LIFNode(step_mode="m", backend=backend)
        out = n(x)
        assert out.dtype == torch.bfloat16
        if backend == "eager":
            ref = out
    assert torch.equal(ref, out)

    class Box(type(make_surrogate("triangle"))):
        name = "box"
        numba_code = None

    x32 = _inputs((4, 3, 8), torch.float32)
    assert not F.numba_applicable(x32, Box())
    grads = []
    for backend in ("eager", "fused"):
        (xx,) = _leaves(x32)
        LIFNode(step_mode="m", surrogate=Box(), backend=backend)(xx).sum().backward()
        grads.append(xx.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_no_grad_streaming_builds_no_graph():
    n = LIFNode(step_mode="s")
    w = torch.nn.Parameter(torch.ones(()))
    with torch.no_grad():
        for _ in range(3):
            s = n(torch.rand(2, 6) * w)
    assert s.grad_fn is None and n.v.grad_fn is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("kind", ["lif", "alif"])
def test_inplace_inference_equals_training_forward_bit_for_bit(kind, dtype):
    """The in-place torch algorithm (the CUDA path) and the numba kernel give the spikes and states of
    the autograd forward exactly, and update the given state tensors where they lie."""
    x = _inputs((6, 3, 700), torch.float32, seed=4).to(dtype)
    sur = make_surrogate("dspike")
    params = (0.2, 0.5) if kind == "lif" else (0.2, 0.5, 0.3, 0.5)
    n_state = 1 if kind == "lif" else 3
    init = [_inputs((3, 700), torch.float32, seed=5 + k).clamp(0, 0.4).to(dtype) for k in range(n_state)]
    if kind == "alif":
        init[2] = (init[2] > 0.2).to(dtype)  # last spikes are 0/1
    ref_impl = "numba" if dtype != torch.bfloat16 else "torch"
    if kind == "lif":
        s_ref, h_ref = F.lif_sequence(x, init[0], *params, sur, impl=ref_impl)
        ref = (s_ref, h_ref)
    else:
        s_ref, h_ref, a_ref = F.alif_sequence(x, *init, *params, sur, impl=ref_impl)
        ref = (s_ref, h_ref, a_ref, s_ref[-1])
    impls = ["torch"] + (["numba"] if dtype != torch.bfloat16 else [])
    for impl in impls:
        state = [v.clone() for v in init]
        ptrs = [v.data_ptr() for v in state]
        fn = F.lif_sequence_ if kind == "lif" else F.alif_sequence_
        s = fn(x, *state, *params, impl=impl)
        assert [v.data_ptr() for v in state] == ptrs
        for got, want in zip((s, *state), ref):
            assert torch.equal(got, want), impl
    with pytest.raises(ValueError, match="contiguous"):
        F.lif_sequence_(x, torch.zeros(700, 3, dtype=dtype).t(), 0.2, 0.5)
    if dtype == torch.bfloat16:
        with pytest.raises(ValueError, match="numba"):
            F.lif_sequence_(x, torch.zeros(3, 700, dtype=dtype), 0.2, 0.5, impl="numba")


@pytest.mark.parametrize("cls", [LIFNode, ALIFNode])
def test_neuron_inference_updates_owned_state_in_place_only(cls):
    x = _inputs((6, 4, 6), torch.float32, seed=7)
    ref = cls(step_mode="s", backend="eager")
    want = [ref(xt) for xt in x]
    n = cls(step_mode="s")
    with torch.inference_mode():
        got = [n(x[0])]
        ptr = n.v.data_ptr()
        got += [n(xt) for xt in x[1:3]]
        assert n.v.data_ptr() == ptr  # no clone per step
    with torch.no_grad():  # inference tensors cannot be written outside inference mode: copied once
        got.append(n(x[3]))
        assert n.v.data_ptr() != ptr and not n.v.is_inference()
    # a training call: its state may be saved by the graph, so the next inference call copies it once
    xg = x[4].clone().requires_grad_()
    got.append(n(xg))
    trained = {k: v for k, v in n.state.items()}
    snapshot = {k: v.clone() for k, v in trained.items()}
    with torch.no_grad():
        got.append(n(x[5]))
    for k, v in trained.items():
        assert torch.equal(v, snapshot[k])
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    for k in ref.state:
        assert torch.equal(n.state[k], ref.state[k])

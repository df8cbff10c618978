"""Surrogates: forward is the strict step, backward is the analytic formula of REFERENCE §5."""

import math

import numpy as np
import pytest
import torch

from eventstereo.snn.surrogates import (
    SURROGATES,
    ArcTan,
    Dspike,
    Sigmoid,
    SuperSpike,
    Surrogate,
    Triangle,
    make_surrogate,
)


# The formulas written independently of the implementation, in numpy float64.
def _ref_dspike(x, b):
    return np.where(np.abs(x) < 0.5, b * (1 - np.tanh(b * x) ** 2) / (2 * np.tanh(b / 2)), 0.0)


def _ref_triangle(x, g):
    return np.maximum(0.0, g - np.abs(x)) / g**2


def _ref_superspike(x, k):
    return 1.0 / (1.0 + k * np.abs(x)) ** 2


def _ref_arctan(x, a):
    return a / (2 * (1 + (np.pi * a * x / 2) ** 2))


def _ref_sigmoid(x, a):
    sg = 1 / (1 + np.exp(-a * x))
    return a * sg * (1 - sg)


REFS = {"dspike": _ref_dspike, "triangle": _ref_triangle, "superspike": _ref_superspike,
        "arctan": _ref_arctan, "sigmoid": _ref_sigmoid}
# a grid plus x = 0 exactly and the Dspike window edges
X = torch.cat([torch.linspace(-1.5, 1.5, 297, dtype=torch.float64),
               torch.tensor([0.0, -0.5, 0.5, 1e-9], dtype=torch.float64)])


def test_registry_names_and_defaults():
    assert set(SURROGATES) == set(REFS)
    assert SURROGATES["dspike"] is Dspike and Dspike().temperature == 3.0
    assert {Triangle, SuperSpike, ArcTan, Sigmoid} <= set(SURROGATES.values())


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("temp", [None, 1.7])
def test_forward_is_strict_step_and_backward_matches_formula(name, temp):
    sur = make_surrogate(name, temp)
    t = sur.temperature
    x = X.clone().requires_grad_()
    y = sur(x)
    assert torch.equal(y, (X > 0).double())
    assert y[X == 0].item() == 0.0  # fires only when u > theta
    g = torch.linspace(0.5, 2.0, X.numel(), dtype=torch.float64)  # non-uniform upstream gradient
    (y * g).sum().backward()
    expected = REFS[name](X.numpy(), t) * g.numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REFS))
def test_primitive_derivative_is_the_surrogate(name):
    sur = make_surrogate(name, 2.5)
    sur.spiking = False
    xs = X.sort().values
    x = xs.clone().requires_grad_()
    y = sur(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), REFS[name](xs.numpy(), 2.5), rtol=1e-9, atol=1e-9)
    assert y.min() >= -1e-12 and torch.all(y[1:] >= y[:-1] - 1e-12)  # monotone like a step


def test_dspike_is_zero_outside_window_and_rises_0_to_1_across_it():
    x = torch.tensor([-0.75, -0.5, 0.5, 0.75], dtype=torch.float64, requires_grad=True)
    Dspike()(x).sum().backward()
    assert torch.all(x.grad == 0)
    s = Dspike(spiking=False)
    ends = s(torch.tensor([-0.5, 0.5], dtype=torch.float64))
    assert ends.tolist() == [0.0, 1.0]
    # integral of the derivative over the window is 1 (it is a scaled ramp)
    xs = np.linspace(-0.5, 0.5, 200001)
    ys = _ref_dspike(xs, 3.0)
    assert abs(((ys[1:] + ys[:-1]) / 2 * np.diff(xs)).sum() - 1.0) < 1e-5


def test_temperature_is_mutable_and_backward_uses_forward_time_value():
    sur = Dspike()
    x = torch.tensor([0.1], dtype=torch.float64, requires_grad=True)
    y = sur(x)
    sur.temperature = 5.0  # DGS moves b between steps; this pass keeps b = 3
    y.backward()
    assert x.grad.item() == pytest.approx(_ref_dspike(np.array([0.1]), 3.0)[0], rel=1e-12)
    x.grad = None
    sur(x).backward()
    assert x.grad.item() == pytest.approx(_ref_dspike(np.array([0.1]), 5.0)[0], rel=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_temperature_validation(bad):
    with pytest.raises(ValueError, match="temperature"):
        Dspike(bad)
    s = Triangle()
    with pytest.raises(ValueError):
        s.temperature = bad


def test_make_surrogate_fresh_instances_and_errors():
    a, b = make_surrogate("dspike"), make_surrogate("DSPIKE")
    assert a is not b
    a.temperature = 4.0
    assert b.temperature == 3.0
    assert make_surrogate("arctan", 0.5).temperature == 0.5
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_surrogate("heaviside")


def test_float32_and_custom_subclass():
    class Rect(Surrogate):
        name = "rect"

        @staticmethod
        def derivative(x, temperature):
            return (x.abs() < temperature / 2).to(x.dtype) / temperature

    x = torch.tensor([-0.3, 0.0, 0.2, 0.9], requires_grad=True)
    y = Rect(1.0)(x)
    assert y.dtype == torch.float32 and y.tolist() == [0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0]

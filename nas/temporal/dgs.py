"""DGS, differentiable surrogate-gradient search (REFERENCE §8), for chosen layers.

One DGS batch: for each candidate temperature b + delta_k the chosen layers' weights take one SGD step
computed with that surrogate (a weight copy w_k per candidate; with several chosen layers, candidate k
shifts all of them by delta_k together); the currents the copies produce are captured; then the layer
spikes once on the mix sum_k softmax(alpha)_k I(w_k) and alpha takes an Adam step on the task loss. The
candidate whose surrogate gives the most useful weight step gains weight. softmax(alpha) is summed over
the round's batches; at the round's end b <- clamp(b + delta[argmax of the sum], 1, 6), alpha starts
again from zero, and the move is logged.

Nothing here touches a layer that was not chosen, and nothing moves b outside a round: the
predecessor moved b even with DGS off, which the tests guard against.

The passes restore the weights, BatchNorm statistics and neuron states they disturb, so a DGS batch
changes only alpha (and b at a round's end); the weights train in the ordinary loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from eventstereo.errors import InputError
from eventstereo.model.genotype import edge_endpoints
from eventstereo.snn.neurons import BaseNeuron, MemoryModule, NeuronSpec, neurons, reset_net
from nas.temporal.mixture import NeuronMixture, spec_of
from nas.temporal.tps import TimeConstantMixture

__all__ = ["DGS_DELTAS", "TEMPERATURE_RANGE", "DGSNeuron", "layer_weights", "set_temperature", "DGSRound"]

DGS_DELTAS = (-0.4, -0.2, 0.0, 0.2, 0.4)
TEMPERATURE_RANGE = (1.0, 6.0)


def set_temperature(layer: nn.Module, temperature: float) -> None:
    """Set the surrogate temperature of every spiking neuron in a layer (a neuron, mixture or wrapper)."""
    for m in layer.modules():
        if isinstance(m, TimeConstantMixture):  # keeps its centre spec in step
            m.center = replace(m.center, temperature=temperature)
    for _, n in neurons(layer):
        if n.is_spiking:
            n.surrogate.temperature = temperature


class DGSNeuron(MemoryModule):
    """Wraps a layer's neuron (or mixture). Modes: 'pass' (plain), 'capture' (record the currents it is
    fed, one per call), 'mix' (spike on the alpha-mix of captured currents instead of its input)."""

    def __init__(self, neuron: nn.Module):
        super().__init__(getattr(neuron, "step_mode", "s"))
        self.neuron = neuron
        self.mode = "pass"
        self.captured: list[Tensor] = []
        self.mix: tuple[Tensor, list[list[Tensor]]] | None = None
        self._call = 0

    @property
    def temperature(self) -> float:
        spiking = [n for _, n in neurons(self.neuron) if n.is_spiking]
        if not spiking:
            raise InputError("DGS needs a spiking neuron in the layer")
        return spiking[0].surrogate.temperature

    def set_temperature(self, temperature: float) -> None:
        set_temperature(self.neuron, temperature)

    def decided_spec(self) -> NeuronSpec:
        return spec_of(self.neuron)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "capture":
            self.captured.append(x.detach())
        elif self.mode == "mix":
            assert self.mix is not None
            weights, currents = self.mix
            i = self._call
            self._call += 1
            # the value is the mix of the captured currents; the zero-valued (x - x.detach()) keeps the
            # gradient path to the layers upstream, whose own alpha it would otherwise cut off
            x = sum(w * c[i] for w, c in zip(weights.to(x.dtype), currents)) + (x - x.detach())
        return self.neuron(x)


def layer_weights(model: nn.Module, layer: str) -> dict[str, nn.Parameter]:
    """The parameters that compute a neuron layer's input current, by qualified name.

    ``a.b.neuron`` -> the parameters of ``a.b`` outside its neuron (conv + BN); a cell node
    ``a.cellI.nodeJ`` -> the parameters of the cell's edges that feed node J.
    """
    parent_name, _, leaf = layer.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    prefix = f"{parent_name}." if parent_name else ""
    out: dict[str, nn.Parameter] = {}
    edges = getattr(parent, "edges", None)
    if isinstance(edges, nn.ModuleDict) and leaf.startswith("node") and leaf[4:].isdigit():
        node = int(leaf[4:])
        for key, op in edges.items():
            if edge_endpoints(int(key))[1] == node:
                out.update({f"{prefix}edges.{key}.{n}": p for n, p in op.named_parameters()})
    else:
        for n, p in parent.named_parameters():
            if not n.startswith(f"{leaf}."):
                out[prefix + n] = p
    if not out:
        raise InputError(f"DGS layer {layer!r} has no weights feeding it (an identity-only node?)")
    return out


class DGSRound:
    """The DGS state of the chosen layers: alpha per layer, its Adam, the round's accumulated weights."""

    def __init__(self, model: nn.Module, layers: Sequence[str], *, deltas: Sequence[float] = DGS_DELTAS,
                 alpha_lr: float = 0.01, weight_lr: float = 0.01):
        self.model = model
        self.layers = list(layers)
        self.deltas = tuple(float(d) for d in deltas)
        self.weight_lr = float(weight_lr)
        self.wrappers: dict[str, DGSNeuron] = {}
        for name in self.layers:
            m = model.get_submodule(name)
            if not isinstance(m, DGSNeuron):
                raise InputError(f"DGS layer {name!r} is not wrapped for DGS")
            self.wrappers[name] = m
        self.weights = {name: layer_weights(model, name) for name in self.layers}
        self.alpha = {name: torch.zeros(len(self.deltas), requires_grad=True) for name in self.layers}
        self.optimizer = torch.optim.Adam(list(self.alpha.values()), lr=alpha_lr)
        self.accumulated = {name: torch.zeros(len(self.deltas)) for name in self.layers}
        self.batches = 0

    # ------------------------------------------------------------------------------------- one batch
    def step(self, loss_fn: Callable[[], Tensor]) -> None:
        """One DGS batch on the loss `loss_fn` computes (a forward from a reset state)."""
        saved = {n: b.detach().clone() for n, b in self.model.named_buffers()}
        base = {name: w.temperature for name, w in self.wrappers.items()}
        params = [p for name in self.layers for p in self.weights[name].values()]
        originals = [p.detach().clone() for p in params]
        currents: dict[str, list[list[Tensor]]] = {name: [] for name in self.layers}
        try:
            for delta in self.deltas:
                for name, w in self.wrappers.items():
                    w.set_temperature(_clamp(base[name] + delta))
                loss = loss_fn()
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                with torch.no_grad():  # this candidate's weight copy, then the currents it produces
                    for p, p0, g in zip(params, originals, grads):
                        p.copy_(p0 if g is None else p0 - self.weight_lr * g)
                    for w in self.wrappers.values():
                        w.mode, w.captured = "capture", []
                    loss_fn()
                    for name, w in self.wrappers.items():
                        currents[name].append(w.captured)
                    for p, p0 in zip(params, originals):
                        p.copy_(p0)
                self._restore_buffers(saved)
            for name, w in self.wrappers.items():
                w.set_temperature(base[name])
                w.mode, w.captured, w._call = "mix", [], 0
                w.mix = (torch.softmax(self.alpha[name], 0), currents[name])
            loss = loss_fn()
            grads = torch.autograd.grad(loss, [self.alpha[n] for n in self.layers])
            for name, g in zip(self.layers, grads):
                self.alpha[name].grad = g
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            for name in self.layers:
                self.accumulated[name] += torch.softmax(self.alpha[name].detach(), 0)
            self.batches += 1
        finally:
            with torch.no_grad():
                for p, p0 in zip(params, originals):
                    p.copy_(p0)
            for name, w in self.wrappers.items():
                w.mode, w.captured, w.mix, w._call = "pass", [], None, 0
                w.set_temperature(base[name])
            self._restore_buffers(saved)
            reset_net(self.model)

    def _restore_buffers(self, saved: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for n, b in self.model.named_buffers():
                if n in saved:
                    b.copy_(saved[n])

    # ------------------------------------------------------------------------------------ round end
    def finish(self) -> dict[str, float]:
        """End of a round: move each layer's b by its best delta; returns the new temperatures."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for acc in self.accumulated.values():  # every rank decides the same
                torch.distributed.all_reduce(acc)
        moved = {}
        for name, w in self.wrappers.items():
            if self.batches:
                best = int(torch.argmax(self.accumulated[name]))
                w.set_temperature(_clamp(w.temperature + self.deltas[best]))
            moved[name] = w.temperature
            self.accumulated[name].zero_()
            with torch.no_grad():
                self.alpha[name].zero_()
        self.optimizer.state.clear()
        self.batches = 0
        return moved

    def state_dict(self) -> dict:
        return {"alpha": {n: a.detach().clone() for n, a in self.alpha.items()},
                "accumulated": {n: a.clone() for n, a in self.accumulated.items()},
                "optimizer": self.optimizer.state_dict(), "batches": self.batches,
                "temperatures": {n: w.temperature for n, w in self.wrappers.items()}}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for n in self.layers:
                self.alpha[n].copy_(state["alpha"][n])
                self.accumulated[n].copy_(state["accumulated"][n])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches = int(state["batches"])
        for n, t in state["temperatures"].items():
            self.wrappers[n].set_temperature(float(t))


def _clamp(b: float) -> float:
    lo, hi = TEMPERATURE_RANGE
    return round(min(hi, max(lo, b)), 6)


def is_neuron_layer(m: nn.Module) -> bool:
    return isinstance(m, (BaseNeuron, NeuronMixture, DGSNeuron))

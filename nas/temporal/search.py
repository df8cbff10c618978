"""The temporal search as one object: attach TPS / HNS / DGS to any network built from eventstereo's
neurons, train it in an ordinary loop (it is a ``TrainHook``), then ``decide()``.

``attach`` swaps the chosen neuron layers for searchable ones by name (a mixture for TPS/HNS, a DGS
wrapper around either). ``decide`` puts plain neurons with the decided specs back at those names, in
the trained model and in any copy of it (a weight average), so the network is again the deployable
one; its ``current_genotype()`` then records the specs as the genotype's per-layer neuron overrides,
which is what ``save_model`` writes and ``eventstereo stream`` loads.

Layer names are the network's neuron module names (``feature.stem1.neuron``, ``feature.cell0.node1``);
``"stem"`` in a DGS layer list stands for every layer with a ``stem`` component.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from eventstereo.errors import InputError
from eventstereo.snn.neurons import BaseNeuron, NeuronSpec, make_neuron
from eventstereo.training.loop import TrainHook
from nas.temporal.dgs import DGS_DELTAS, DGSNeuron, DGSRound
from nas.temporal.hns import HybridMixture, energy_aware_loss, energy_ratio
from nas.temporal.mixture import NeuronMixture, mixtures, replace_layer, spec_of
from nas.temporal.tps import TPS_DELTAS, TPS_KINDS, TimeConstantMixture

__all__ = ["TemporalConfig", "TemporalSearch", "attach", "neuron_table", "resolve_layers"]


@dataclass
class TemporalConfig:
    """What to search and how. Iterations count optimizer iterations of the training loop.

    TPS: after ``tps_warmup`` iterations, every ``tps_period`` iterations each layer moves to its best
    candidate. DGS: every ``dgs_every`` iterations a round of the last ``dgs_batches`` of them ends with
    b moving. ``decide_at`` > 0: decide after that many iterations and let the weights adapt to the
    decided neurons for the rest of the run (the mixture a net trained with is not the net it decides).
    ``arch_lr``: Adam on the mixtures' c; ``dgs_lr``: Adam on alpha; ``dgs_weight_lr``: the SGD
    step of the candidates' weight copies.
    """

    tps: bool = False
    hns: bool = False
    decide_at: int = 0  # decide after this many iterations and train the decided net on (0: at the end)
    dgs_layers: tuple[str, ...] = ()
    energy_lambda: float = 0.0
    layers: tuple[str, ...] | None = None  # TPS/HNS layers (None: every eligible neuron layer)
    tps_deltas: tuple[float, ...] = TPS_DELTAS
    tps_warmup: int = 0
    tps_period: int = 5
    arch_lr: float = 0.05
    dgs_deltas: tuple[float, ...] = DGS_DELTAS
    dgs_every: int = 20
    dgs_batches: int = 5
    dgs_lr: float = 0.01
    dgs_weight_lr: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.energy_lambda <= 1.0:
            raise InputError(f"--energy-lambda must lie in [0, 1], not {self.energy_lambda}")
        if self.energy_lambda > 0 and not self.hns:
            raise InputError("--energy-lambda prices the neuron choice: it needs --hns")
        if self.tps_period < 1 or self.dgs_every < 1 or not 1 <= self.dgs_batches <= self.dgs_every:
            raise InputError("TPS period and DGS round lengths must be >= 1, with dgs_batches <= dgs_every")

    @property
    def active(self) -> bool:
        return self.tps or self.hns or bool(self.dgs_layers)


def resolve_layers(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Neuron layer names from a user list; ``stem`` expands to every layer with a ``stem`` part."""
    known = [n for n, m in model.named_modules() if isinstance(m, BaseNeuron)]
    out: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name == "stem":
            found = [n for n in known if any(p.startswith("stem") for p in n.split("."))]
            if not found:
                raise InputError("--dgs stem: this network has no stem neuron layer")
        elif name in known:
            found = [name]
        else:
            raise InputError(f"--dgs: no neuron layer {name!r}; layers: {', '.join(known)}")
        out += [n for n in found if n not in out]
    return out


class TemporalSearch(TrainHook):
    """The attached search: TrainHook methods for the loop, ``decide`` and the history for after."""

    def __init__(self, model: nn.Module, config: TemporalConfig):
        self.model = model
        self.config = config
        self.layers: list[str] = []
        candidates = [n for n, m in model.named_modules() if isinstance(m, BaseNeuron)]
        wanted = candidates if config.layers is None else resolve_layers(model, config.layers)
        dgs_layers = resolve_layers(model, config.dgs_layers)
        for name in candidates:
            neuron = model.get_submodule(name)
            layer: nn.Module = neuron
            if name in wanted and config.hns:
                layer = HybridMixture.around(neuron, tps=config.tps, tps_deltas=config.tps_deltas)
            elif name in wanted and config.tps and neuron.kind in TPS_KINDS:
                layer = TimeConstantMixture.around(neuron, config.tps_deltas)
            if name in dgs_layers:
                if not neuron.is_spiking:
                    raise InputError(f"--dgs: layer {name!r} is a ReLU; it has no surrogate to search")
                layer = DGSNeuron(layer)
            if layer is not neuron:
                replace_layer(model, name, layer)
                self.layers.append(name)
        self._arch = [m.logits for _, m in mixtures(model)]
        self.arch_optimizer = torch.optim.Adam(self._arch, lr=config.arch_lr) if self._arch else None
        self.dgs = (DGSRound(model, dgs_layers, deltas=config.dgs_deltas, alpha_lr=config.dgs_lr,
                             weight_lr=config.dgs_weight_lr) if dgs_layers else None)
        self.iteration = 0
        self.decided = False
        self.copies: list[nn.Module] = []
        self.history: dict[str, list] = {"tps": [], "dgs": [], "hns": []}
        self._log_tps()
        if self.dgs is not None:
            self.history["dgs"].append({"iteration": 0, **self.dgs.state_dict()["temperatures"]})

    # ----------------------------------------------------------------------------- TrainHook methods
    def parameters(self) -> list[nn.Parameter]:
        return list(self._arch)

    def loss(self, model: nn.Module, loss: Tensor) -> Tensor:
        if self.decided:
            return loss
        return energy_aware_loss(loss, self._hybrids(), self.config.energy_lambda)

    def after_backward(self, model: nn.Module) -> None:
        if self.arch_optimizer is not None:
            self.arch_optimizer.step()
            self.arch_optimizer.zero_grad(set_to_none=True)

    def after_iteration(self, model: nn.Module, step: int, sequence_loss: Callable[[], Tensor]) -> None:
        cfg = self.config
        if self.decided:
            return
        self.iteration = step
        if cfg.decide_at and step >= cfg.decide_at:
            self.decide()
            return
        if cfg.tps and step > cfg.tps_warmup and (step - cfg.tps_warmup) % cfg.tps_period == 0:
            self.tps_step()
        if self.dgs is not None:
            if (step - 1) % cfg.dgs_every >= cfg.dgs_every - cfg.dgs_batches:
                self.dgs.step(sequence_loss)
            if step % cfg.dgs_every == 0:
                self.history["dgs"].append({"iteration": step, **self.dgs.finish()})

    def track(self, copy: nn.Module) -> None:
        self.copies.append(copy)

    def state_dict(self) -> dict:
        if self.decided:
            return {"iteration": self.iteration, "decided": {n: s.to_dict() for n, s in self.specs().items()},
                    "history": json.loads(json.dumps(self.history))}
        return {"iteration": self.iteration,
                "centers": {n: m.center.to_dict() for n, m in self._tps_mixtures()},
                "arch_optimizer": self.arch_optimizer.state_dict() if self.arch_optimizer else None,
                "dgs": self.dgs.state_dict() if self.dgs is not None else None,
                "history": json.loads(json.dumps(self.history))}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        if "decided" in state:
            self._apply({n: NeuronSpec.from_dict(d) for n, d in state["decided"].items()}, self.model)
            self._retire()
            self.history = state["history"]
            return
        tps = dict(self._tps_mixtures())
        for name, center in state["centers"].items():
            tps[name].set_center(NeuronSpec.from_dict(center))
        if self.arch_optimizer is not None and state.get("arch_optimizer") is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        if self.dgs is not None and state.get("dgs") is not None:
            self.dgs.load_state_dict(state["dgs"])
        self.history = state["history"]

    # --------------------------------------------------------------------------------------- search
    def tps_step(self) -> None:
        """Every TPS layer moves to its best candidate; c (and its Adam moments) start afresh."""
        for _, m in self._tps_mixtures():
            m.move()
            if self.arch_optimizer is not None:
                self.arch_optimizer.state.pop(m.logits, None)
        self._log_tps()

    def energy_ratio(self) -> float:
        """E_pred / E_relu of the HNS layers now (after a forward pass)."""
        return float(energy_ratio(self._hybrids()))

    def specs(self) -> dict[str, NeuronSpec]:
        """What each searched layer would decide now."""
        return {name: spec_of(self.model.get_submodule(name)) for name in self.layers}

    def decide(self, *copies: nn.Module) -> dict[str, NeuronSpec]:
        """Replace every searched layer by a plain neuron with its decided spec, in the model and in
        `copies` (same structure, e.g. a weight average); returns {layer: spec}. Afterwards the hook
        is inert."""
        decided = self.specs()
        for name, probs in self._hns_probabilities().items():
            self.history["hns"].append({"iteration": self.iteration, "layer": name,
                                        "decided": decided[name].kind, **probs})
        self._apply(decided, self.model, *self.copies, *copies)
        self._retire()
        return decided

    def _apply(self, decided: dict[str, NeuronSpec], *modules: nn.Module) -> None:
        for module in modules:
            for name, spec in decided.items():
                old = module.get_submodule(name)
                replace_layer(module, name, make_neuron(spec, step_mode=_step_mode(old),
                                                        backend=_backend(old)))

    def _retire(self) -> None:
        self._arch, self.arch_optimizer, self.dgs, self.decided = [], None, None, True

    # -------------------------------------------------------------------------------------- history
    def save_history(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """``temporal_history.json`` and, where there is something to plot, PNGs beside it."""
        from nas.temporal.history import plot_history

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "temporal_history.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"config": _plain(asdict(self.config)), **self.history}, indent=1))
        os.replace(tmp, path)
        return {"history": path, **plot_history(self.history, out)}

    def _hybrids(self) -> list[HybridMixture]:
        return [m for _, m in mixtures(self.model) if isinstance(m, HybridMixture)]

    def _tps_mixtures(self) -> list[tuple[str, TimeConstantMixture]]:
        return [(n, m) for n, m in mixtures(self.model) if isinstance(m, TimeConstantMixture)]

    def _searched(self, kind: type) -> list[tuple[str, str, nn.Module]]:
        """(layer, name inside the layer, module) for the `kind` mixtures of every searched layer."""
        return [(layer, sub, m) for layer in self.layers
                for sub, m in self.model.get_submodule(layer).named_modules() if isinstance(m, kind)]

    def _hns_probabilities(self) -> dict[str, dict[str, float]]:
        return {layer: {k: round(p, 4) for k, p in zip(m.kinds, m.probabilities().detach().tolist())}
                for layer, _, m in self._searched(HybridMixture)}

    def _log_tps(self) -> None:
        for layer, sub, m in self._searched(TimeConstantMixture):
            entry = {"iteration": self.iteration, "layer": layer, "kind": m.center.kind,
                     "nested": bool(sub), "tau": m.center.tau}
            if m.center.kind == "alif":
                entry["rho"] = m.center.rho
            self.history["tps"].append(entry)


def neuron_table(model: nn.Module) -> dict[str, dict]:
    """{layer: spec as the genotype stores it} for every neuron layer (the ``neurons`` key of reports)."""
    return {name: m.spec.to_dict() for name, m in model.named_modules() if isinstance(m, BaseNeuron)}


def attach(model: nn.Module, *, tps: bool = False, hns: bool = False, dgs_layers: Sequence[str] = (),
           energy_lambda: float = 0.0, **options) -> TemporalSearch:
    """Make `model` searchable in place; returns the search (a TrainHook). ``options``: TemporalConfig."""
    return TemporalSearch(model, TemporalConfig(tps=tps, hns=hns, dgs_layers=tuple(dgs_layers),
                                                energy_lambda=energy_lambda, **options))


def _step_mode(layer: nn.Module) -> str:
    return getattr(layer, "step_mode", "s")


def _backend(layer: nn.Module) -> str:
    for m in layer.modules():
        if hasattr(m, "backend"):
            return m.backend
    return "fused"


def _plain(d):
    return json.loads(json.dumps(d, default=list))


__all__ += ["NeuronMixture", "DGSNeuron"]

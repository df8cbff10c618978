"""``model.step`` replayed as one CUDA graph: the streaming window without per-op launch overhead.

A paper-size window launches about 2,000 small kernels; on a GPU their launch cost, not their work,
bounds the rate. :class:`GraphedStep` captures one ``step`` for a fixed input shape and replays it. That
needs static addresses for everything the step reads and writes across calls, which the inference path
already gives: the neuron state is updated in place (eventstereo.snn.neurons), the prepared weights are
cached (eventstereo.model.ops), the spikes and currents live in the graph's private pool.

Capturing runs a few warm-up steps on a side stream (they create the state and the caches), then puts
the neuron state back to what it was, so the stream continues exactly as without the graph. ``reset()``
zeroes the state in place (dropping it would break the graph's addresses). The returned cost is the
graph's static output: overwritten by the next ``step``, so read or copy it first. On any other device
(and for a different input shape, which recaptures) it is the plain ``model.step``.

Unmeasured so far: no GPU was available when this was written (the torch-ops neuron algorithm it runs is
tested equal to the CPU kernels bit for bit).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from eventstereo.snn.neurons import MemoryModule


def _states(model: nn.Module) -> list[tuple[MemoryModule, str]]:
    return [(m, k) for m in model.modules() if isinstance(m, MemoryModule) for k in m._memories]


class GraphedStep(nn.Module):
    """Wraps a stereo model (``step``, ``reset``, ``max_disparity``); see the module docstring."""

    def __init__(self, model: nn.Module, warmup: int = 3):
        super().__init__()
        self.model = model
        self.warmup = warmup
        self.max_disparity = model.max_disparity
        self._graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[Tensor, Tensor] | None = None
        self._output: Tensor | None = None

    def reset(self) -> None:
        if self._graph is None:
            self.model.reset()
            return
        with torch.inference_mode():  # state made in inference mode can only be written there
            for m, k in _states(self.model):
                v = m._memories[k]
                if v is not None:
                    v.zero_()

    def _snapshot(self) -> list[Tensor | None]:
        return [None if m._memories[k] is None else m._memories[k].clone() for m, k in _states(self.model)]

    @torch.inference_mode()
    def _restore(self, saved: list[Tensor | None]) -> None:
        for (m, k), v in zip(_states(self.model), saved):
            live = m._memories[k]
            if live is None:
                continue
            if v is None:
                live.zero_()
            else:
                live.copy_(v)

    def _capture(self, left: Tensor, right: Tensor) -> None:
        saved = self._snapshot()
        side = torch.cuda.Stream(device=left.device)
        side.wait_stream(torch.cuda.current_stream(left.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.model.step(left, right)
        torch.cuda.current_stream(left.device).wait_stream(side)
        self._restore(saved)
        inputs = (left.clone(), right.clone())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.model.step(*inputs)
        self._graph, self._inputs, self._output = graph, inputs, output

    def step(self, left: Tensor, right: Tensor) -> Tensor:
        if left.device.type != "cuda":
            return self.model.step(left, right)
        if self._inputs is None or self._inputs[0].shape != left.shape:
            self._capture(left, right)
        self._inputs[0].copy_(left)
        self._inputs[1].copy_(right)
        self._graph.replay()
        return self._output

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.step(left, right)

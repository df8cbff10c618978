"""The SpikeDHS search space over eventstereo's op table (REFERENCE §6).

- :class:`SearchCell`: every candidate edge of an N-node cell carries every op of
  ``eventstereo.model.ops.OPS``, weighted by softmax(alpha) of that edge. Mixing at the membrane
  (``"membrane"``, the default, the paper's MM): the weighted currents of all candidates of all edges
  of a node go into ONE membrane that spikes once, the neuron the decoded cell deploys. Mixing at the
  spike (``"spike"``, the MS ablation): each candidate current drives its own neuron (with the op's
  temperature; a skip between nodes passes the spikes it gets) and the node outputs the weighted sum of
  the candidates' spikes. The candidate convolutions that read the same input run as one convolution
  (``conv_currents``), the cell's biggest saving. 2-D (N, C, H, W) and 3-D (N, D, C, H, W) maps.
- :class:`Trellis`: the layer search over 4 resolution levels: node (layer l, level s) is a cell fed by
  the outputs of layer l-1 at levels s-1 (down), s (stay) and, with ``allow_up``, s+1 (up), resampled to
  level s (nearest) and mixed by the betas, softmax over the transitions leaving each node (LEAStereo).
- :class:`ClassifierSupernet`: the classification supernet with DARTS fixed downsampling (stem,
  ``cells`` searchable cells sharing one set of alphas, reduction at 1/3 and 2/3 depth).

Alphas and betas are ``nn.Parameter`` s of the module (so they are in ``state_dict``);
``arch_parameters()`` and ``weight_parameters()`` split the two for the bi-level search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventstereo.model.genotype import edge_endpoints, n_edges
from eventstereo.model.network import ConvBNSpike, fire, resample2d, resample3d
from eventstereo.model.ops import OPS, PRIMITIVES, ConvBN, conv_currents
from eventstereo.snn.neurons import NeuronSpec, make_neuron, reset_net, set_step_mode

MIXINGS = ("membrane", "spike")
N_LEVELS = 4


def _neuron_for(spec: NeuronSpec, op: str) -> nn.Module:
    temperature = OPS[op].temperature
    return make_neuron(spec if temperature is None else NeuronSpec(**{**spec.to_dict(),
                                                                     "temperature": temperature}))


class SearchCell(nn.Module):
    """A cell whose every candidate edge mixes all ops; weights come from the caller (shared alphas)."""

    def __init__(self, nodes: int, c_s0: int, c_s1: int, c_node: int, dim: int = 2, *,
                 mixing: str = "membrane", spec: NeuronSpec | None = None):
        super().__init__()
        if mixing not in MIXINGS:
            raise ValueError(f"mixing must be one of {MIXINGS}, not {mixing!r}")
        spec = spec or NeuronSpec()
        self.nodes, self.dim, self.mixing, self.c_node = nodes, dim, mixing, c_node
        self.edges = nn.ModuleList()
        self.edge_neurons = nn.ModuleList()  # mixing at the spike: one neuron per candidate
        fused: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._called: list[list[tuple[int, int]]] = [[] for _ in range(nodes + 2)]
        for e in range(n_edges(nodes)):
            src, _ = edge_endpoints(e)
            c_in = (c_s0, c_s1)[src] if src < 2 else c_node
            ops = nn.ModuleList()
            neurons = nn.ModuleList()
            for k, name in enumerate(PRIMITIVES):
                module = OPS[name](c_in, c_node, dim=dim, external=src < 2)
                ops.append(module)
                passes_spikes = isinstance(module, nn.Identity)
                own_neuron = mixing == "spike" and not passes_spikes
                neurons.append(_neuron_for(spec, name) if own_neuron else nn.Identity())
                if OPS[name].fusable and isinstance(module, ConvBN):
                    fused.setdefault((src, module.kernel), []).append((e, k))
                else:
                    self._called[src].append((e, k))
            self.edges.append(ops)
            self.edge_neurons.append(neurons)
        self._fused: list[list[list[tuple[int, int]]]] = [[] for _ in range(nodes + 2)]
        for (src, _), members in fused.items():
            self._fused[src].append(members)
        if mixing == "membrane":
            for j in range(nodes):
                self.add_module(f"node{j}", make_neuron(spec))

    def _currents(self, src: int, x: Tensor, stride: int) -> dict[tuple[int, int], Tensor]:
        out = {}
        for members in self._fused[src]:
            ops = [self.edges[e][k] for e, k in members]
            for key, cur in zip(members, conv_currents(ops, x, stride=None if stride == 1 else stride)):
                out[key] = cur
        for e, k in self._called[src]:
            y = self.edges[e][k](x)
            out[(e, k)] = y[..., ::stride, ::stride] if stride > 1 else y
        return out

    def _contribute(self, src: int, x: Tensor, acc: list[list[tuple[int, Tensor]]], steps: int,
                    stride: int = 1) -> None:
        """Add the candidates reading source ``src`` to their target nodes' term lists."""
        n_ops = len(PRIMITIVES)
        for (e, k), cur in self._currents(src, x, stride).items():
            if self.mixing == "spike":
                neuron = self.edge_neurons[e][k]
                cur = cur if isinstance(neuron, nn.Identity) else fire(neuron, cur, steps)
            acc[edge_endpoints(e)[1]].append((e * n_ops + k, cur))

    @staticmethod
    def _mix(terms: list[tuple[int, Tensor]], flat_weights: Tensor) -> Tensor:
        """sum_i w[i] * term_i as ONE contraction over the stacked terms (its backward is two BLAS
        calls instead of a multiply and a reduction per term: about 1.7x faster here)."""
        index = torch.tensor([i for i, _ in terms], device=flat_weights.device)
        return torch.tensordot(flat_weights[index], torch.stack([t for _, t in terms]), dims=1)

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor, steps: int = 1,
                stride: tuple[int, int] = (1, 1)) -> Tensor:
        """Node outputs concatenated; ``weights`` (edges, ops) are the softmaxed alphas.
        ``stride[i]``: input i is read with that stride (reduction cells)."""
        acc: list[list[tuple[int, Tensor]]] = [[] for _ in range(self.nodes)]
        flat = weights.reshape(-1)
        self._contribute(0, s0, acc, steps, stride[0])
        self._contribute(1, s1, acc, steps, stride[1])
        outs = []
        for j in range(self.nodes):
            mixed = self._mix(acc[j], flat)
            out = fire(getattr(self, f"node{j}"), mixed, steps) if self.mixing == "membrane" else mixed
            outs.append(out)
            self._contribute(2 + j, out, acc, steps)
        return torch.cat(outs, dim=1 if self.dim == 2 else 2)


def init_alphas(nodes: int, generator: torch.Generator | None = None) -> nn.Parameter:
    """Near-uniform architecture weights (edges, ops), as DARTS initialises them."""
    return nn.Parameter(1e-3 * torch.randn(n_edges(nodes), len(PRIMITIVES), generator=generator))


class ArchMixin:
    """Split of a supernet's parameters into architecture (alphas, betas) and weights."""

    ARCH_NAMES: tuple[str, ...] = ("alphas", "alphas_reduce", "betas")

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.split(".")[-1] in self.ARCH_NAMES]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.split(".")[-1] not in self.ARCH_NAMES]


def fixed_path(cells: int) -> tuple[int, ...]:
    """DARTS fixed downsampling: one level down at cells // 3 and 2 * cells // 3."""
    return tuple(int(i >= cells // 3) + int(i >= 2 * cells // 3) for i in range(cells))


class ClassifierSupernet(ArchMixin, nn.Module):
    """Stem, ``cells`` search cells on :func:`fixed_path`, global pooling and a linear read-out.

    ``reduction="shared"``: one set of alphas for all cells (the published genotype's form);
    ``"separate"``: reduction cells have their own (``alphas_reduce``), as DARTS searches them.

    Input as SpikeDHS-CLA: (B, C, H, W) images repeated ``timesteps`` times or (T, B, C, H, W) frames;
    the logits are averaged over the steps."""

    def __init__(self, *, num_classes: int, in_channels: int = 3, channels: int = 16, cells: int = 8,
                 nodes: int = 3, stem_multiplier: int = 3, timesteps: int = 6, mixing: str = "membrane",
                 reduction: str = "shared", spec: NeuronSpec | None = None):
        super().__init__()
        if reduction not in ("shared", "separate"):
            raise ValueError(f"reduction must be 'shared' or 'separate', not {reduction!r}")
        spec = spec or NeuronSpec()
        self.config = dict(num_classes=num_classes, in_channels=in_channels, channels=channels, cells=cells,
                           nodes=nodes, stem_multiplier=stem_multiplier, timesteps=timesteps, mixing=mixing,
                           reduction=reduction)
        self.path = fixed_path(cells)
        self.nodes, self.timesteps, self.in_channels = nodes, timesteps, in_channels
        c_stem = stem_multiplier * channels
        self.stem = ConvBNSpike(in_channels, c_stem, 3, 2, spec)
        widths = [(c_stem, 0), (c_stem, 0)]
        self.cells = nn.ModuleList()
        for level in self.path:
            c_node = channels * 2**level
            cell = SearchCell(nodes, widths[-2][0], widths[-1][0], c_node, 2, mixing=mixing, spec=spec)
            self.cells.append(cell)
            widths.append((nodes * c_node, level))
        self.classifier = nn.Linear(widths[-1][0], num_classes)
        self.alphas = init_alphas(nodes)
        if reduction == "separate":
            self.alphas_reduce = init_alphas(nodes)
        set_step_mode(self, "m")

    def forward(self, x: Tensor) -> Tensor:
        reset_net(self)
        if x.dim() == 4:
            steps = self.timesteps
            x = x.unsqueeze(0).expand(steps, *x.shape)
        elif x.dim() == 5:
            steps = x.shape[0]
        else:
            raise ValueError(f"the supernet takes (B, C, H, W) or (T, B, C, H, W), got {tuple(x.shape)}")
        flat = x.reshape(-1, *x.shape[2:])
        normal = F.softmax(self.alphas, dim=-1)
        reduce = F.softmax(self.alphas_reduce, dim=-1) if hasattr(self, "alphas_reduce") else normal
        a = self.stem(flat, steps)
        prev_prev, prev = (a, 0), (a, 0)
        for cell, level in zip(self.cells, self.path):
            stride = (2 ** (level - prev_prev[1]), 2 ** (level - prev[1]))
            weights = reduce if level > prev[1] else normal
            prev_prev, prev = prev, (cell(prev_prev[0], prev[0], weights, steps, stride), level)
        logits = self.classifier(prev[0].mean((-2, -1)))
        return logits.unflatten(0, (steps, -1)).mean(0)


class Trellis(ArchMixin, nn.Module):
    """The layer trellis: ``layers`` x 4 levels, betas (layers, levels, 3) weighting the transitions
    (t = 0: down from level s-1, 1: stay, 2: up from s+1) into each node (layer, s).

    Each existing transition has its own cell ``make_cell(s, c_s0, c_s1)`` (as in LEAStereo): it reads
    s1 = the previous layer's output at the source level resampled (nearest) to s, and s0 = the
    previous-but-one layer's output at s (the stem's, resampled, where that layer does not reach s).
    Node output = sum_t w_t * cell_t(s0, s1), w from :meth:`beta_weights`. ``c_out(s)`` is a cell's
    output width at level s. ``forward`` returns the last layer's outputs per level (None where
    unreachable); 3-D maps need ``planes`` (disparity planes per level).
    """

    def __init__(self, layers: int, c_stem: int, c_out: Callable[[int], int],
                 make_cell: Callable[[int, int, int], nn.Module], *, dim: int = 2, allow_up: bool = False,
                 levels: int = N_LEVELS):
        super().__init__()
        self.layers, self.levels, self.dim, self.allow_up = layers, levels, dim, allow_up
        mask = self.transition_mask()
        self.cells = nn.ModuleDict()
        for layer in range(layers):
            for s in range(levels):
                for t in range(3):
                    if mask[layer, s, t]:
                        src = s - 1 + t
                        c_s0 = c_out(s) if layer >= 2 and self._reaches(layer - 2, s) else c_stem
                        c_s1 = c_out(src) if layer > 0 else c_stem
                        self.cells[f"{layer}_{s}_{t}"] = make_cell(s, c_s0, c_s1)
        self.betas = nn.Parameter(1e-3 * torch.randn(layers, levels, 3))

    def _reaches(self, layer: int, s: int) -> bool:
        """Whether layer ``layer``'s output exists at level s."""
        return bool(self.transition_mask()[layer, s].any())

    def transition_mask(self) -> Tensor:
        """(layers, levels, 3) True where a transition exists."""
        mask = torch.zeros(self.layers, self.levels, 3, dtype=torch.bool)
        reach = {0}
        for layer in range(self.layers):
            new = set()
            for s in range(self.levels):
                for t, src in enumerate((s - 1, s, s + 1)):
                    if src in reach and (t < 2 or self.allow_up):
                        mask[layer, s, t] = True
                        new.add(s)
            reach = new
        return mask

    def beta_weights(self) -> Tensor:
        """Transition weights, (layers, levels, 3) indexed by target node (0 where none exists): softmax of
        beta over the transitions LEAVING each node (stay / down / up from (layer - 1, s)), as LEAStereo.

        Why not over those entering a node: a node with a single input (the first node at each new
        depth) would weigh it 1 whatever the betas, so the Viterbi decoding would always prefer the
        diagonal to the deepest levels. Normalised over the outputs, the weights along every path multiply
        to a probability (the paths of the trellis sum to 1), which the max-probability path assumes."""
        mask = self.transition_mask()
        layers, levels, _ = mask.shape
        flat: list[Tensor | None] = [None] * (layers * levels * 3)
        for layer in range(layers):
            for src in range(levels):
                leaving = [(s, t) for t, s in ((0, src + 1), (1, src), (2, src - 1))
                           if 0 <= s < levels and mask[layer, s, t]]
                if not leaving:
                    continue
                p = F.softmax(torch.stack([self.betas[layer, s, t] for s, t in leaving]), dim=0)
                for i, (s, t) in enumerate(leaving):
                    flat[(layer * levels + s) * 3 + t] = p[i]
        zero = self.betas.new_zeros(())
        return torch.stack([zero if v is None else v for v in flat]).view(layers, levels, 3)

    def _resample(self, x: Tensor, src: int, dst: int, planes: Sequence[int] | None) -> Tensor:
        return resample2d(x, src, dst) if self.dim == 2 else resample3d(x, src, dst, planes)

    def forward(self, stem: Tensor, alpha_weights: Tensor, steps: int = 1,
                planes: Sequence[int] | None = None) -> list[Tensor | None]:
        bw = self.beta_weights()
        prev: list[Tensor | None] = [stem] + [None] * (self.levels - 1)
        prev_prev: list[Tensor | None] = list(prev)
        for layer in range(self.layers):
            out: list[Tensor | None] = [None] * self.levels
            for s in range(self.levels):
                has_s0 = layer >= 2 and prev_prev[s] is not None
                s0 = prev_prev[s] if has_s0 else self._resample(stem, 0, s, planes)
                for t in range(3):
                    key = f"{layer}_{s}_{t}"
                    if key not in self.cells:
                        continue
                    src = s - 1 + t
                    y = bw[layer, s, t] * self.cells[key](s0, self._resample(prev[src], src, s, planes),
                                                          alpha_weights, steps)
                    out[s] = y if out[s] is None else out[s] + y
            prev_prev, prev = prev, out
        return prev

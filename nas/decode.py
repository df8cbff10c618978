"""Architecture parameters -> genotype (REFERENCE §6 "Decode"), deterministic.

- Cell: per node keep the 2 incoming edges whose strongest NON-skip op weight is largest, each with its
  argmax op (over all ops); the strongest edge is listed first, which is what sets the node's surrogate
  temperature in eventstereo's genotype rule. Ties go to the lower edge / op index.
- Path: the max-probability (Viterbi) path through the trellis, starting at the stem's level 0, with
  softmax(beta) over each node's existing transitions as the transition probabilities.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eventstereo.model.genotype import (
    ClassifierGenotype,
    NetGenotype,
    StereoGenotype,
    edge_endpoints,
    n_edges,
)
from eventstereo.model.ops import PRIMITIVES

SKIP = "skip_connect"
KEEP_PER_NODE = 2


def decode_cell(weights: Tensor, nodes: int) -> tuple[tuple[int, str], ...]:
    """(edge, op) pairs from softmaxed alphas (edges, ops), strongest edge of each node first."""
    w = weights.detach().to("cpu", torch.float64)
    if w.shape != (n_edges(nodes), len(PRIMITIVES)):
        raise ValueError(f"alphas of a {nodes}-node cell are ({n_edges(nodes)}, {len(PRIMITIVES)}), "
                         f"got {tuple(w.shape)}")
    non_skip = [k for k, op in enumerate(PRIMITIVES) if op != SKIP]
    pairs = []
    for j in range(nodes):
        edges = [e for e in range(n_edges(nodes)) if edge_endpoints(e)[1] == j]
        strength = {e: max(float(w[e, k]) for k in non_skip) for e in edges}
        kept = sorted(edges, key=lambda e: (-strength[e], e))[:KEEP_PER_NODE]
        for e in kept:
            row = [float(v) for v in w[e]]
            k = max(range(len(row)), key=lambda i: (row[i], -i))
            pairs.append((e, PRIMITIVES[k]))
    return tuple(pairs)


def viterbi_path(beta_weights: Tensor) -> tuple[int, ...]:
    """Levels of the max-probability path over (layers, levels, 3) transition weights (0 = impossible;
    t = 0 comes from level s-1, 1 stays at s, 2 comes from s+1). The path starts below the stem (level 0)."""
    w = beta_weights.detach().to("cpu", torch.float64)
    layers, levels, _ = w.shape
    score = [0.0] + [-math.inf] * (levels - 1)  # log probability of the best path to each level
    back: list[list[int]] = []
    for layer in range(layers):
        new, arg = [-math.inf] * levels, [-1] * levels
        for s in range(levels):
            for t, src in enumerate((s - 1, s, s + 1)):
                if 0 <= src < levels and w[layer, s, t] > 0 and score[src] > -math.inf:
                    cand = score[src] + math.log(float(w[layer, s, t]))
                    if cand > new[s]:
                        new[s], arg[s] = cand, src
        score = new
        back.append(arg)
    best = max(range(levels), key=lambda s: (score[s], -s))
    if score[best] == -math.inf:
        raise ValueError("the trellis has no path")
    path = [best]
    for layer in range(layers - 1, 0, -1):
        path.append(back[layer][path[-1]])
    return tuple(reversed(path))


def classifier_genotype(alphas: Tensor, config: dict, *, name: str = "searched",
                        alphas_reduce: Tensor | None = None) -> ClassifierGenotype:
    """The SpikeDHS-CLA genotype of a classification supernet (its config: nas.space.ClassifierSupernet;
    ``alphas_reduce``: the reduction cells' own alphas, when searched separately)."""
    from nas.space import fixed_path

    nodes = int(config["nodes"])
    cell = decode_cell(torch.softmax(alphas.detach().double(), dim=-1), nodes)
    reduce_cell = None
    if alphas_reduce is not None:
        reduce_cell = decode_cell(torch.softmax(alphas_reduce.detach().double(), dim=-1), nodes)
    return ClassifierGenotype(reduce_cell=reduce_cell,
        name=name, net=NetGenotype(path=fixed_path(int(config["cells"])), cell=cell),
        filter_multiplier=int(config["channels"]), num_classes=int(config["num_classes"]), nodes=nodes,
        in_channels=int(config["in_channels"]), stem_multiplier=int(config["stem_multiplier"]),
        timesteps=int(config["timesteps"]))


def net_genotype(alphas: Tensor, beta_weights: Tensor, nodes: int) -> NetGenotype:
    """One trellis sub-network: the cell from its alphas (raw), the path from its transition weights
    (``nas.space.Trellis.beta_weights()``)."""
    cell = decode_cell(torch.softmax(alphas.detach().double(), dim=-1), nodes)
    return NetGenotype(path=viterbi_path(beta_weights), cell=cell)


def stereo_genotype(feature: tuple[Tensor, Tensor], matching: tuple[Tensor, Tensor], *, nodes: int,
                    filter_multiplier: int, name: str = "searched", **kwargs) -> StereoGenotype:
    """A StereoGenotype from the (alphas, beta weights) of the feature and matching trellises;
    ``kwargs``: the other StereoGenotype fields (in_channels, max_disparity, neurons)."""
    return StereoGenotype(name=name, feature=net_genotype(*feature, nodes),
                          matching=net_genotype(*matching, nodes), filter_multiplier=filter_multiplier,
                          nodes=nodes, **kwargs)

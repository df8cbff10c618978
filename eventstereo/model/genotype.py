"""Genotypes: the plain, versioned data that fixes one SpikeDHS network (REFERENCE §6).

:class:`StereoGenotype` fixes a SpikeDHS-Stereo network, :class:`ClassifierGenotype` a SpikeDHS-CLA
classifier; both share the cell format (:class:`NetGenotype`), the neuron settings
(:class:`NeuronSettings`), the JSON conventions and the validation below.

A genotype names, for the feature net and the matching net, the resolution level of each layer (the
decoded trellis path) and the cell (which edges a node keeps and which op each edge runs), plus the
channel width, the input/disparity setting and the neuron of every spiking layer. The NAS search writes
this format and the deployed network reads it, so a searched architecture runs with no conversion.

Edges are numbered as in the predecessor logs: node ``j`` has ``2 + j`` candidate inputs, the cell
inputs ``s0`` (the cell before the previous one) and ``s1`` (the previous one) and then nodes ``0 ..
j-1``; node 0 owns edges 0-1, node 1 edges 2-4, node 2 edges 5-8, and so on. The node an edge feeds
follows from its index, so the order of the pairs only matters within a node: the FIRST non-skip op
listed for a node sets that node's surrogate temperature (the search decodes the strongest edge first).
This order rule is part of the format: the published matching cell lists snn_b3 before snn_b5 for node
0 and deploys it with temperature 3, so no order-free rule (max, min) keeps the published meaning.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eventstereo.errors import InputError
from eventstereo.model.ops import OPS, PRIMITIVES
from eventstereo.snn.neurons import NeuronSpec

GENOTYPE_FORMAT = "eventstereo.genotype"
GENOTYPE_VERSION = 1
N_LEVELS = 4  # 1/3, 1/6, 1/12, 1/24 of the input resolution
STEM_STRIDE = 3

CLASSIFIER_FORMAT = "eventstereo.classifier_genotype"

_TOP_KEYS = {"format", "version", "name", "in_channels", "max_disparity", "nodes", "filter_multiplier",
             "feature", "matching", "neurons"}
_CLASSIFIER_KEYS = {"format", "version", "name", "in_channels", "num_classes", "nodes", "filter_multiplier",
                    "stem_multiplier", "timesteps", "auxiliary", "net", "neurons"}


def n_edges(nodes: int) -> int:
    """Candidate edges of a cell with ``nodes`` nodes (2 + 3 + 4 = 9 for three nodes)."""
    return sum(2 + j for j in range(nodes))


def edge_endpoints(edge: int) -> tuple[int, int]:
    """(source, target node) of an edge; source 0 = s0, 1 = s1, 2 + i = node i of the same cell."""
    start, j = 0, 0
    while edge >= start + 2 + j:
        start += 2 + j
        j += 1
    return edge - start, j


def disparity_planes(max_disparity: int) -> int:
    """Planes of the 1/3-resolution cost volume: disparities 0, 3, 6, ... (21 for max disparity 63)."""
    return (max_disparity + 1) // STEM_STRIDE


def level_planes(max_disparity: int, levels: int = 4) -> list[int]:
    """Disparity planes of the 3-D matching net at each level: halved (rounded up) per level down."""
    planes = [disparity_planes(max_disparity)]
    for _ in range(1, levels):
        planes.append(math.ceil(planes[-1] / 2))
    return planes


@dataclass(frozen=True)
class NetGenotype:
    """One sub-network: ``path`` = level per layer (0 = 1/3 resolution), ``cell`` = (edge, op) pairs."""

    path: tuple[int, ...]
    cell: tuple[tuple[int, str], ...]

    def node_edges(self, node: int) -> list[tuple[int, str]]:
        """The (edge, op) pairs feeding ``node``, in listed order."""
        return [(e, op) for e, op in self.cell if edge_endpoints(e)[1] == node]

    def node_temperature(self, node: int) -> float | None:
        """Surrogate temperature of a node: that of its first listed op that has one (None: all skips)."""
        for _, op in self.node_edges(node):
            if OPS[op].temperature is not None:
                return OPS[op].temperature
        return None

    def to_dict(self) -> dict:
        return {"path": list(self.path), "cell": [[e, op] for e, op in self.cell]}


@dataclass(frozen=True)
class NeuronSettings:
    """Default neuron of every spiking layer plus per-layer overrides keyed by layer name.

    Layer names are those of the built network (``feature.stem1.neuron``, ``matching.cell2.node0``; see
    :func:`neuron_layer_names`). A layer without an override uses ``default`` with, for cell nodes, the
    temperature of its op (``snn_b3`` -> 3, ``snn_b5`` -> 5); an override is taken as written, which is
    how DGS/TPS/HNS results are recorded.
    """

    default: NeuronSpec = field(default_factory=NeuronSpec)
    overrides: Mapping[str, NeuronSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(sorted(self.overrides.items()))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NeuronSettings):
            return NotImplemented
        return self.default == other.default and dict(self.overrides) == dict(other.overrides)

    def __reduce__(self):  # the read-only overrides view cannot be pickled or deep-copied as it is
        return (NeuronSettings, (self.default, dict(self.overrides)))

    def __hash__(self) -> int:
        return hash((self.default, tuple(self.overrides.items())))

    def spec_for(self, layer: str, temperature: float | None = None) -> NeuronSpec:
        """The neuron of ``layer``; ``temperature`` (from the layer's op) applies only without override."""
        if layer in self.overrides:
            return self.overrides[layer]
        if temperature is not None:
            return replace(self.default, temperature=temperature)
        return self.default

    def to_dict(self) -> dict:
        overrides = {k: v.to_dict() for k, v in self.overrides.items()}
        return {"default": self.default.to_dict(), "overrides": overrides}


@dataclass(frozen=True)
class StereoGenotype:
    """A whole SpikeDHS-Stereo architecture; validated on construction (InputError naming the field).

    ``filter_multiplier`` F sets the widths: a node at level l has F * 2**l channels, a cell outputs
    ``nodes`` times that.
    """

    name: str
    feature: NetGenotype
    matching: NetGenotype
    filter_multiplier: int
    nodes: int = 3
    in_channels: int = 5
    max_disparity: int = 63
    neurons: NeuronSettings = field(default_factory=NeuronSettings)
    version: int = GENOTYPE_VERSION

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def disparity_planes(self) -> int:
        return disparity_planes(self.max_disparity)

    @property
    def resolution_multiple(self) -> int:
        """H and W are padded to a multiple of this so every level of the paths divides evenly."""
        deepest = max(max(self.feature.path), max(self.matching.path))
        return STEM_STRIDE * 2**deepest

    def with_changes(self, **changes: Any) -> StereoGenotype:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "format": GENOTYPE_FORMAT,
            "version": self.version,
            "name": self.name,
            "in_channels": self.in_channels,
            "max_disparity": self.max_disparity,
            "nodes": self.nodes,
            "filter_multiplier": self.filter_multiplier,
            "feature": self.feature.to_dict(),
            "matching": self.matching.to_dict(),
            "neurons": self.neurons.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping, *, source: str | None = None) -> StereoGenotype:
        """Parse the JSON form; ops may be names or indices into :data:`PRIMITIVES` (the logs' form)."""
        return _with_source(_from_dict, d, source)

    @classmethod
    def from_json(cls, text: str, *, source: str | None = None) -> StereoGenotype:
        return cls.from_dict(_parse_json(text, source), source=source)


@dataclass(frozen=True)
class ClassifierGenotype:
    """A whole SpikeDHS-CLA classifier (REFERENCE §6 "Classification"); validated on construction.

    ``net.path`` is the level of each cell (0 = the stem's resolution); a cell one level below the one
    before it is a reduction cell (its inputs are read with stride 2, DARTS fixed downsampling: the
    published path [0, 0, 1, 1, 1, 2, 2, 2] has them at 1/3 and 2/3 depth). ``net.cell`` is the one cell
    all layers share. ``filter_multiplier`` C: a node at level l has C * 2**l channels, the stem
    ``stem_multiplier`` * C. ``auxiliary``: an auxiliary head after cell ``2 * cells // 3`` (used in
    training only). ``timesteps``: T, the steps a static image is repeated (or SBT frames an event
    sample is cut into); the logits are averaged over them.
    """

    name: str
    net: NetGenotype
    filter_multiplier: int
    num_classes: int
    nodes: int = 3
    in_channels: int = 3
    stem_multiplier: int = 3
    timesteps: int = 6
    auxiliary: bool = True
    neurons: NeuronSettings = field(default_factory=NeuronSettings)
    version: int = GENOTYPE_VERSION

    def __post_init__(self) -> None:
        _validate_classifier(self)

    @property
    def cells(self) -> int:
        return len(self.net.path)

    @property
    def auxiliary_after(self) -> int | None:
        """Index of the cell the auxiliary head reads (None without one)."""
        return 2 * self.cells // 3 if self.auxiliary else None

    def with_changes(self, **changes: Any) -> ClassifierGenotype:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "format": CLASSIFIER_FORMAT,
            "version": self.version,
            "name": self.name,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "nodes": self.nodes,
            "filter_multiplier": self.filter_multiplier,
            "stem_multiplier": self.stem_multiplier,
            "timesteps": self.timesteps,
            "auxiliary": self.auxiliary,
            "net": self.net.to_dict(),
            "neurons": self.neurons.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping, *, source: str | None = None) -> ClassifierGenotype:
        """Parse the JSON form (ops may be names or indices into :data:`PRIMITIVES`)."""
        return _with_source(_classifier_from_dict, d, source)

    @classmethod
    def from_json(cls, text: str, *, source: str | None = None) -> ClassifierGenotype:
        return cls.from_dict(_parse_json(text, source), source=source)


def _with_source(parse: Any, d: Any, source: str | None) -> Any:
    try:
        return parse(d)
    except InputError as e:
        if source is None or e.source is not None:
            raise
        raise InputError(str(e), source=source) from None


def _parse_json(text: str, source: str | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"genotype is not valid JSON ({e})", source=source) from None


Genotype = StereoGenotype | ClassifierGenotype
GENOTYPE_KINDS: Mapping[str, type] = MappingProxyType(
    {GENOTYPE_FORMAT: StereoGenotype, CLASSIFIER_FORMAT: ClassifierGenotype})
"""Genotype ``format`` field -> class: the one place that says which formats exist."""


def genotype_from_dict(d: Any, *, source: str | None = None) -> Genotype:
    """A stereo or classifier genotype, by its ``format`` field (InputError naming an unknown one)."""
    fmt = d.get("format", GENOTYPE_FORMAT) if isinstance(d, Mapping) else None
    if fmt not in GENOTYPE_KINDS:
        raise InputError(f"genotype field 'format': unknown {fmt!r} (known: {sorted(GENOTYPE_KINDS)})",
                         source=source)
    return GENOTYPE_KINDS[fmt].from_dict(d, source=source)


def read_genotype(path: str | os.PathLike) -> Genotype:
    """A stereo or classifier genotype from a JSON file (InputError naming the file if bad)."""
    key = os.fspath(path)
    try:
        text = Path(key).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read genotype ({e})", source=key) from None
    return genotype_from_dict(_parse_json(text, key), source=key)


def classifier_layer_names(g: ClassifierGenotype) -> list[str]:
    """Names of all spiking layers of the classifier built from ``g``, in execution order."""
    names = ["stem.neuron"]
    for i in range(g.cells):
        names += [f"cell{i}.node{j}" for j in range(g.nodes)]
        if i == g.auxiliary_after:
            names.append("aux.conv.neuron")
    return names


def layer_temperature(g: StereoGenotype | ClassifierGenotype, layer: str) -> float | None:
    """The surrogate temperature a cell node takes from its ops (None for layers that are not nodes)."""
    parts = layer.split(".")
    if isinstance(g, ClassifierGenotype):
        net, parts = g.net, ["net", *parts]
    else:
        net = g.feature if parts[0] == "feature" else g.matching
    if len(parts) == 3 and parts[1].startswith("cell") and parts[2].startswith("node"):
        return net.node_temperature(int(parts[2][4:]))
    return None


def neuron_layer_names(g: StereoGenotype | ClassifierGenotype) -> list[str]:
    """Names of all spiking layers of the network built from ``g``, in execution order."""
    if isinstance(g, ClassifierGenotype):
        return classifier_layer_names(g)
    names = ["feature.stem0.neuron", "feature.stem1.neuron"]
    names += [f"feature.cell{i}.node{j}" for i in range(len(g.feature.path)) for j in range(g.nodes)]
    names += ["feature.last.neuron", "matching.stem0.neuron", "matching.stem1.neuron"]
    names += [f"matching.cell{i}.node{j}" for i in range(len(g.matching.path)) for j in range(g.nodes)]
    if g.matching.path[-1] != 0:
        names.append("matching.reduce.neuron")
    return names


def _fail(field_name: str, message: str) -> None:
    raise InputError(f"genotype field {field_name!r}: {message}")


def _check_int(value: Any, field_name: str, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field_name, f"must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        _fail(field_name, f"must be {bounds}, got {value}")


def _validate_net(net: NetGenotype, prefix: str, nodes: int, *, downward_only: bool = False) -> None:
    if not isinstance(net, NetGenotype):
        _fail(prefix, f"must be a NetGenotype, got {type(net).__name__}")
    if not net.path:
        _fail(f"{prefix}.path", "needs at least one layer")
    for i, level in enumerate(net.path):
        _check_int(level, f"{prefix}.path[{i}]", 0, N_LEVELS - 1)
        before = 0 if i == 0 else net.path[i - 1]  # the stem is at level 0
        if abs(level - before) > 1:
            _fail(f"{prefix}.path", f"layer {i} jumps from level {before} to {level} (at most one per layer)")
        if downward_only and level < before:
            _fail(f"{prefix}.path", f"layer {i} goes back up from level {before} to {level} (a classifier "
                                    "only downsamples)")
    seen: set[int] = set()
    for i, pair in enumerate(net.cell):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            _fail(f"{prefix}.cell[{i}]", f"must be an (edge, op) pair, got {pair!r}")
        edge, op = pair
        _check_int(edge, f"{prefix}.cell[{i}] edge", 0, n_edges(nodes) - 1)
        if op not in PRIMITIVES:
            _fail(f"{prefix}.cell[{i}] op", f"unknown op {op!r}; known: {list(PRIMITIVES)}")
        if edge in seen:
            _fail(f"{prefix}.cell[{i}]", f"edge {edge} is listed twice")
        seen.add(edge)
    for j in range(nodes):
        if not net.node_edges(j):
            _fail(f"{prefix}.cell", f"node {j} has no incoming edge")


def _validate(g: StereoGenotype) -> None:
    if not isinstance(g.name, str) or not g.name:
        _fail("name", "must be a non-empty string")
    _check_int(g.version, "version", 1)
    if g.version > GENOTYPE_VERSION:
        _fail("version", f"{g.version} is newer than this eventstereo reads ({GENOTYPE_VERSION})")
    _check_int(g.nodes, "nodes", 1, 8)
    _check_int(g.filter_multiplier, "filter_multiplier", 1)
    _check_int(g.in_channels, "in_channels", 1)
    _check_int(g.max_disparity, "max_disparity", STEM_STRIDE - 1)
    for name in ("feature", "matching"):
        _validate_net(getattr(g, name), name, g.nodes)
    _validate_neurons(g)


def _validate_classifier(g: ClassifierGenotype) -> None:
    if not isinstance(g.name, str) or not g.name:
        _fail("name", "must be a non-empty string")
    _check_int(g.version, "version", 1)
    if g.version > GENOTYPE_VERSION:
        _fail("version", f"{g.version} is newer than this eventstereo reads ({GENOTYPE_VERSION})")
    _check_int(g.nodes, "nodes", 1, 8)
    _check_int(g.filter_multiplier, "filter_multiplier", 1)
    _check_int(g.stem_multiplier, "stem_multiplier", 1)
    _check_int(g.in_channels, "in_channels", 1)
    _check_int(g.num_classes, "num_classes", 2)
    _check_int(g.timesteps, "timesteps", 1)
    if not isinstance(g.auxiliary, bool):
        _fail("auxiliary", f"must be true or false, got {g.auxiliary!r}")
    _validate_net(g.net, "net", g.nodes, downward_only=True)
    _validate_neurons(g)


def _validate_neurons(g: StereoGenotype | ClassifierGenotype) -> None:
    if not isinstance(g.neurons, NeuronSettings):
        _fail("neurons", f"must be NeuronSettings, got {type(g.neurons).__name__}")
    known = set(neuron_layer_names(g))
    for layer in g.neurons.overrides:
        if layer not in known:
            close = sorted(k for k in known if k.split(".")[0] == layer.split(".")[0])[:6]
            _fail(f"neurons.overrides.{layer}", f"no such spiking layer in this genotype (e.g. {close})")


def _spec(d: Any, field_name: str) -> NeuronSpec:
    if isinstance(d, NeuronSpec):
        return d
    if not isinstance(d, Mapping):
        _fail(field_name, f"must be a neuron spec object, got {d!r}")
    try:
        spec = NeuronSpec.from_dict(dict(d))
    except (TypeError, ValueError, KeyError) as e:
        _fail(field_name, f"bad neuron spec ({e})")
    for key in ("tau", "theta", "beta", "rho", "temperature"):
        value = getattr(spec, key, None)
        if isinstance(value, float) and not math.isfinite(value):
            _fail(f"{field_name}.{key}", f"must be finite, got {value}")
    return spec


def _net_from(d: Any, prefix: str) -> NetGenotype:
    if not isinstance(d, Mapping) or set(d) != {"path", "cell"}:
        _fail(prefix, "must be an object with exactly the keys 'path' and 'cell'")
    if not isinstance(d["path"], list) or not isinstance(d["cell"], list):
        _fail(prefix, "'path' and 'cell' must be lists")
    cell = []
    for i, pair in enumerate(d["cell"]):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            _fail(f"{prefix}.cell[{i}]", f"must be an [edge, op] pair, got {pair!r}")
        edge, op = pair
        if isinstance(op, int) and not isinstance(op, bool):
            if not 0 <= op < len(PRIMITIVES):
                _fail(f"{prefix}.cell[{i}] op", f"op index {op} out of range 0..{len(PRIMITIVES) - 1}")
            op = PRIMITIVES[op]
        cell.append((edge, op))
    return NetGenotype(path=tuple(d["path"]), cell=tuple(cell))


def _check_keys(d: Any, fmt: str, known: set[str], required: tuple[str, ...]) -> None:
    if not isinstance(d, Mapping):
        raise InputError("a genotype must be a JSON object")
    if d.get("format", GENOTYPE_FORMAT) != fmt:
        _fail("format", f"expected {fmt!r}, got {d.get('format', GENOTYPE_FORMAT)!r}")
    if "version" not in d:
        _fail("version", "missing")
    unknown = set(d) - known
    if unknown:
        _fail(sorted(unknown)[0], f"unknown key (known: {sorted(known)})")
    for key in required:
        if key not in d:
            _fail(key, "missing")


def _from_dict(d: Any) -> StereoGenotype:
    _check_keys(d, GENOTYPE_FORMAT, _TOP_KEYS, ("name", "filter_multiplier", "feature", "matching"))
    kwargs = {k: d[k] for k in ("in_channels", "max_disparity", "nodes") if k in d}
    return StereoGenotype(
        name=d["name"],
        version=d["version"],
        filter_multiplier=d["filter_multiplier"],
        feature=_net_from(d["feature"], "feature"),
        matching=_net_from(d["matching"], "matching"),
        neurons=_neurons_from(d.get("neurons", {})),
        **kwargs,
    )


def _classifier_from_dict(d: Any) -> ClassifierGenotype:
    _check_keys(d, CLASSIFIER_FORMAT, _CLASSIFIER_KEYS, ("name", "filter_multiplier", "num_classes", "net"))
    optional = ("in_channels", "nodes", "stem_multiplier", "timesteps", "auxiliary")
    kwargs = {k: d[k] for k in optional if k in d}
    return ClassifierGenotype(
        name=d["name"],
        version=d["version"],
        filter_multiplier=d["filter_multiplier"],
        num_classes=d["num_classes"],
        net=_net_from(d["net"], "net"),
        neurons=_neurons_from(d.get("neurons", {})),
        **kwargs,
    )


def _neurons_from(neurons_d: Any) -> NeuronSettings:
    if not isinstance(neurons_d, Mapping) or set(neurons_d) - {"default", "overrides"}:
        _fail("neurons", "must be an object with the keys 'default' and 'overrides'")
    default = _spec(neurons_d["default"], "neurons.default") if "default" in neurons_d else NeuronSpec()
    overrides_d = neurons_d.get("overrides", {})
    if not isinstance(overrides_d, Mapping):
        _fail("neurons.overrides", "must be an object mapping layer names to neuron specs")
    overrides = {k: _spec(v, f"neurons.overrides.{k}") for k, v in overrides_d.items()}
    return NeuronSettings(default=default, overrides=overrides)


_GENOTYPE_DIR = Path(__file__).with_name("genotypes")


def _load_bundled() -> Mapping[str, StereoGenotype]:
    out = {}
    for path in sorted(_GENOTYPE_DIR.glob("*.json")):
        g = StereoGenotype.from_json(path.read_text(), source=str(path))
        if g.name != path.stem:
            raise InputError(f"genotype name {g.name!r} differs from its file name", source=str(path))
        out[g.name] = g
    return MappingProxyType(out)


GENOTYPES: Mapping[str, StereoGenotype] = _load_bundled()
"""Named genotypes shipped with the package (``eventstereo/model/genotypes/<name>.json``)."""
DEFAULT_GENOTYPE = "spikedhs_stereo"


def list_genotypes() -> Iterator[str]:
    return iter(sorted(GENOTYPES))


def load_genotype(name_or_path: str | os.PathLike | StereoGenotype = DEFAULT_GENOTYPE) -> StereoGenotype:
    """A bundled genotype by name, or one read from a JSON file (InputError naming the file if bad)."""
    if isinstance(name_or_path, StereoGenotype):
        return name_or_path
    key = os.fspath(name_or_path)
    if key in GENOTYPES:
        return GENOTYPES[key]
    path = Path(key)
    if not path.is_file():
        raise InputError(f"no bundled genotype of that name (known: {sorted(GENOTYPES)}) and no such file",
                         source=key)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read genotype ({e})", source=key) from None
    return StereoGenotype.from_json(text, source=key)

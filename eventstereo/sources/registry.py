"""The table of sources: one entry per kind, from which the CLI flags and the GUI's source form are made.

An entry (``SourceEntry``) is a name, a frozen config dataclass and an opener. Each config field carries
its flag, help text and range in its metadata (``option``); ``__post_init__`` validates the values and
raises InputError naming the flag ("--window-ms must be a positive finite number, got 0"), so a bad
value fails the same way from the command line, the GUI form or Python. A new source is one entry.

``add_source_arguments`` turns the table into argparse flags (a flag several kinds share, such as
``--root``, appears once with each kind's help); ``open_source(args)`` builds the source a namespace
describes, as `stream`, the tools and the benchmarks do; ``open_config(config)`` opens a config
directly, as the GUI does. Every kind takes the common ``--window-ms`` and ``--start-s``.
"""

from __future__ import annotations

import argparse
import math
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from eventstereo.errors import InputError
from eventstereo.sources.base import Source
from eventstereo.sources.gt_convention import GT_CONVENTIONS

MAX_SENSOR_PX = 8192
"""Largest synthetic sensor side accepted (a typo such as 34600 would otherwise allocate gigabytes)."""

MAX_WINDOW_MS = 10_000.0


def option(help: str, default: Any = None, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, choices: tuple | None = None, path: str | None = None,
           required: bool = False) -> Any:
    """A config field with its command-line / form facts: ``low``/``high`` bound numbers (``low_open``:
    the bound itself is excluded), ``choices`` lists the allowed values, ``path`` is "file", "dir"
    or "new" (a file to write) for a path the form offers to browse to, ``required`` fields must be given."""
    meta = dict(help=help, low=low, high=high, low_open=low_open, choices=choices, path=path,
                required=required)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """One option of a source as the CLI and the GUI form see it."""

    name: str
    flag: str
    type: type
    default: Any
    help: str
    optional: bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    path: str | None = None
    required: bool = False


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_specs(config_type: type) -> list[FieldSpec]:
    """The options of a config dataclass in declaration order, with their types resolved."""
    hints = typing.get_type_hints(config_type)
    out = []
    for f in fields(config_type):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        base = args[0] if optional and len(args) == 1 else hint
        default = None if f.default is MISSING else f.default
        out.append(FieldSpec(f.name, flag_of(f.name), base, default, optional=optional, **f.metadata))
    return out


def requirement(spec: FieldSpec) -> str:
    """What a value of ``spec`` must be, as error messages and form tooltips say it."""
    noun = {int: "integer", float: "finite number", str: "text"}.get(spec.type, spec.type.__name__)
    if spec.choices is not None:
        return "one of " + ", ".join(map(str, spec.choices))
    if spec.low == 0 and spec.low_open:
        phrase = f"a positive {noun}"
    elif spec.low is not None:
        phrase = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun} {'>' if spec.low_open else '>='} {spec.low:g}"
    else:
        phrase = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    return phrase + (f" (at most {spec.high:g})" if spec.high is not None else "")


def _valid(spec: FieldSpec, v: Any) -> bool:
    if spec.type in (int, float):
        if isinstance(v, bool) or not isinstance(v, (int, float) if spec.type is float else int):
            return False
        if not math.isfinite(v):
            return False
        if spec.low is not None and (v <= spec.low if spec.low_open else v < spec.low):
            return False
        if spec.high is not None and v > spec.high:
            return False
    elif not isinstance(v, spec.type):
        return False
    return spec.choices is None or v in spec.choices


def _check(config) -> None:
    """Validate every field of ``config`` against its spec; InputError naming the flag and the value."""
    for spec in field_specs(type(config)):
        v = getattr(config, spec.name)
        if v is None:
            if spec.required or not spec.optional:
                raise InputError(f"--source {config.kind} needs {spec.flag}")
        elif not _valid(spec, v):
            shown = format(v, "g") if isinstance(v, float) else repr(v)
            raise InputError(f"{spec.flag} must be {requirement(spec)}, got {shown}")


# --- configs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Common:
    """Options every kind takes."""

    window_ms: float = option("window length (ms)", 50.0, low=0.0, low_open=True, high=MAX_WINDOW_MS)
    start_s: float | None = option("start this many seconds into the recording (seekable sources)",
                                   low=0.0)

    kind: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check(self)

    @property
    def window_us(self) -> int:
        return int(round(self.window_ms * 1000))


@dataclass(frozen=True)
class SyntheticSourceConfig(_Common):
    """The procedural scene rendered by the event simulator (endless, GT everywhere)."""

    kind: typing.ClassVar[str] = "synthetic"
    seed: int = option("synthetic scene and motion seed", 0, low=0)
    width: int = option("synthetic sensor width (px)", 346, low=1, high=MAX_SENSOR_PX)
    height: int = option("synthetic sensor height (px)", 260, low=1, high=MAX_SENSOR_PX)


@dataclass(frozen=True)
class MVSECSourceConfig(_Common):
    """An MVSEC recording: one sequence, or a split's subset (the published protocol)."""

    kind: typing.ClassVar[str] = "mvsec"
    root: str | None = option("dataset directory", path="dir", required=True)
    sequence: str | None = option("sequence (e.g. indoor_flying1)")
    split: int | None = option("split 1 or 3", choices=(1, 3))
    subset: str | None = option("subset of the split", choices=("train", "val", "test"))
    gt_convention: str = option("exact float GT, or ddes: the published tables' GT (1/7 px steps, "
                                ">= 255/7 px invalid, events strictly after the window start)", "exact",
                                choices=GT_CONVENTIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sequence is not None and self.split is not None:
            raise InputError("--source mvsec takes --sequence or --split, not both")
        if self.sequence is None and self.split is None:
            raise InputError("--source mvsec needs --sequence NAME or --split {1,3} "
                             "--subset {train,val,test}")
        if self.split is not None and self.subset is None:
            raise InputError("--source mvsec needs --subset with --split")


@dataclass(frozen=True)
class DSECSourceConfig(_Common):
    """DSEC sequences with their disparity GT."""

    kind: typing.ClassVar[str] = "dsec"
    root: str | None = option("dataset directory", path="dir", required=True)
    sequence: str | None = option("sequence(s), comma-separated, or 'all'", required=True)
    subset: str = option("'train' or 'test' folder", "train", choices=("train", "test"))

    def __post_init__(self) -> None:
        if self.subset not in ("train", "test"):
            raise InputError(f"--source dsec takes --subset train or test, got {self.subset!r}")
        super().__post_init__()


@dataclass(frozen=True)
class Aedat4SourceConfig(_Common):
    """A stereo AEDAT4 recording (DV software or `--record`)."""

    kind: typing.ClassVar[str] = "aedat4"
    file: str | None = option("the stereo recording", path="file", required=True)
    left_camera: str | None = option("left camera name")
    right_camera: str | None = option("right camera name")
    calib: str | None = option("kalibr camchain yaml to rectify with", path="file")
    fxb: float | None = option("focal length x baseline (px*m)", low=0.0, low_open=True)


@dataclass(frozen=True)
class LiveSourceConfig(_Common):
    """A live DAVIS pair through dv-processing."""

    kind: typing.ClassVar[str] = "live"
    left_camera: str | None = option("left serial number")
    right_camera: str | None = option("right serial number")
    calib: str | None = option("kalibr camchain yaml to rectify with", path="file")
    fxb: float | None = option("focal length x baseline (px*m)", low=0.0, low_open=True)
    record: str | None = option("also write what the cameras saw to this AEDAT4 file", path="new")


# --- openers --------------------------------------------------------------------------------------------
def _open_synthetic(c: SyntheticSourceConfig) -> Source:
    from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource

    return SyntheticStereoSource(SyntheticConfig(width=c.width, height=c.height, window_us=c.window_us),
                                 seed=c.seed)


def _open_mvsec(c: MVSECSourceConfig) -> Source:
    from eventstereo.sources.mvsec import MVSECSource

    return MVSECSource(c.root, sequence=c.sequence, split=c.split, subset=c.subset, window_us=c.window_us,
                       gt_convention=c.gt_convention)


def _open_dsec(c: DSECSourceConfig) -> Source:
    from eventstereo.sources.dsec import DSECSource

    return DSECSource(c.root, sequences=c.sequence, subset=c.subset, window_us=c.window_us)


def _nan_if_none(v: float | None) -> float:
    return math.nan if v is None else v


def _open_aedat4(c: Aedat4SourceConfig) -> Source:
    from eventstereo.sources.dv import AedatStereoSource

    return AedatStereoSource(c.file, left_camera=c.left_camera, right_camera=c.right_camera,
                             window_us=c.window_us, calib=c.calib, fxb=_nan_if_none(c.fxb))


def _open_live(c: LiveSourceConfig) -> Source:
    from eventstereo.sources.dv import LiveStereoSource

    return LiveStereoSource(left_serial=c.left_camera, right_serial=c.right_camera, window_us=c.window_us,
                            calib=c.calib, fxb=_nan_if_none(c.fxb), record_to=c.record)


@dataclass(frozen=True)
class SourceEntry:
    """One kind of source: ``live`` sources are cameras (the session drops windows rather than lag)."""

    name: str
    config: type
    open: Callable[[Any], Source]
    title: str
    live: bool = False


SOURCES: dict[str, SourceEntry] = {e.name: e for e in (
    SourceEntry("synthetic", SyntheticSourceConfig, _open_synthetic, "Synthetic scene"),
    SourceEntry("mvsec", MVSECSourceConfig, _open_mvsec, "MVSEC recording"),
    SourceEntry("dsec", DSECSourceConfig, _open_dsec, "DSEC sequence"),
    SourceEntry("aedat4", Aedat4SourceConfig, _open_aedat4, "AEDAT4 file"),
    SourceEntry("live", LiveSourceConfig, _open_live, "Live DAVIS pair", live=True),
)}
SOURCE_KINDS = tuple(SOURCES)


# --- command line ---------------------------------------------------------------------------------------
def _cli_table() -> dict[str, list[tuple[str, FieldSpec]]]:
    """Every flag once (in table order) with the kinds that take it."""
    table: dict[str, list[tuple[str, FieldSpec]]] = {}
    for entry in SOURCES.values():
        for spec in field_specs(entry.config):
            table.setdefault(spec.name, []).append((entry.name, spec))
    return table


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--source`` choice and every kind's options, generated from the table."""
    g = parser.add_argument_group("source")
    g.add_argument("--source", choices=SOURCE_KINDS, default="synthetic", help="where events come from")
    for name, uses in _cli_table().items():
        specs = [s for _, s in uses]
        first = specs[0]
        if len(uses) == len(SOURCES):
            help_text = first.help
        else:
            help_text = "; ".join(f"{kind}: {s.help}" for kind, s in uses)
        defaults = {s.default for s in specs}
        choices = tuple(dict.fromkeys(c for s in specs for c in (s.choices or ()))) or None
        g.add_argument(first.flag, dest=name, type=first.type, choices=choices,
                       default=defaults.pop() if len(defaults) == 1 else None, help=help_text)


def _given(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def config_from_args(args: argparse.Namespace):
    """The config of ``args.source`` from a namespace (None or absent: the field's default)."""
    kind = getattr(args, "source", "synthetic")
    if kind not in SOURCES:
        raise InputError(f"unknown source {kind!r}; choose from {', '.join(SOURCE_KINDS)}")
    entry = SOURCES[kind]
    own = {s.name for s in field_specs(entry.config)}
    for name, uses in _cli_table().items():  # an option given (not its default) to a kind that lacks it
        if name not in own and _given(args, name) not in (None, uses[0][1].default):
            raise InputError(f"{uses[0][1].flag} does not apply to --source {kind} "
                             f"(only to {', '.join(k for k, _ in uses)})")
    values = {n: _given(args, n) for n in own if _given(args, n) is not None}
    return entry.config(**values)


def open_config(config) -> Source:
    """Open the source a config describes (and seek to its ``start_s``)."""
    entry = next((e for e in SOURCES.values() if isinstance(config, e.config)), None)
    if entry is None:
        raise InputError(f"not a source config: {type(config).__name__}")
    source = entry.open(config)
    if entry.live:
        source.live = True
    if config.start_s:
        if not source.can_seek:
            source.close()
            raise InputError(f"--start-s: the {entry.name} source cannot seek")
        source.seek(int(round(config.start_s * 1e6)))
        if source.at_end:
            n = len(source)
            source.close()
            raise InputError(f"--start-s {config.start_s:g} is past the end of the {entry.name} recording "
                             f"({n} windows of {config.window_ms:g} ms)")
    return source


def open_source(args: argparse.Namespace) -> Source:
    """Build the source that ``args`` (from add_source_arguments) describe; InputError on bad arguments."""
    return open_config(config_from_args(args))

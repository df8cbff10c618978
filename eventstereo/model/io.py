"""Deployed model files: one safetensors file with everything needed to rebuild and run the network.

One format for every network built from a genotype: the stereo network and the SpikeDHS-CLA
classifier (:data:`MODEL_KINDS`, keyed by the genotype's ``format`` field).

The tensors are the model's ``state_dict``; the safetensors metadata (string -> string) carries, under
namespaced keys with JSON values:

- ``eventstereo.format_version``: this layout's version (:data:`FORMAT_VERSION`);
- ``eventstereo.genotype``: the architecture AND the neurons as they were at save time (TPS/DGS/HNS
  results are per-layer overrides), so the file rebuilds the exact network;
- ``eventstereo.sbt``: the SBT encoder settings the network was trained with (a classifier of static
  images has none: the key is then absent);
- ``eventstereo.provenance``: free-form training facts (data, epochs, metrics, commit, ...);
- ``eventstereo.bn_folded``: whether BatchNorm was folded into the convolutions before saving;
- ``eventstereo.library_version``: the eventstereo version that wrote it.

Loading parses JSON and raw tensors only (safetensors never unpickles), rebuilds the network from the
genotype and loads the weights with ``strict=True``: a file whose tensors do not fit its genotype, a
corrupt or truncated file, or missing metadata gives an InputError naming the file and the problem.
Saving writes a temporary file in the same folder and renames it over the target, so an interrupted save
never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import eventstereo
from eventstereo.errors import InputError
from eventstereo.events.sbt import SBTSettings
from eventstereo.model.classifier import SpikeDHSClassifier
from eventstereo.model.genotype import (
    CLASSIFIER_FORMAT,
    GENOTYPE_FORMAT,
    ClassifierGenotype,
    StereoGenotype,
    genotype_from_dict,
)
from eventstereo.model.network import SpikeDHSStereo
from eventstereo.snn.bnfold import fold_batchnorms

FORMAT_VERSION = 1
KEY_PREFIX = "eventstereo."
KEY_FORMAT = "eventstereo.format_version"
KEY_GENOTYPE = "eventstereo.genotype"
KEY_SBT = "eventstereo.sbt"
KEY_PROVENANCE = "eventstereo.provenance"
KEY_BN_FOLDED = "eventstereo.bn_folded"
KEY_LIBRARY = "eventstereo.library_version"

BUNDLED_MODEL = Path(__file__).with_name("weights") / "demo.safetensors"
"""The model shipped inside the package (trained on the synthetic source), used when none is given."""


@dataclass(frozen=True)
class ModelKind:
    """One kind of network a model file can hold: its task name, genotype and network classes, and
    whether it reads SBT frames (then the file must carry SBT settings)."""

    task: str
    genotype: type
    network: type[nn.Module]
    needs_sbt: bool


MODEL_KINDS: dict[str, ModelKind] = {
    GENOTYPE_FORMAT: ModelKind("stereo", StereoGenotype, SpikeDHSStereo, needs_sbt=True),
    CLASSIFIER_FORMAT: ModelKind("classification", ClassifierGenotype, SpikeDHSClassifier, needs_sbt=False),
}
"""Genotype format -> the network a model file of that format rebuilds."""
TASKS = tuple(k.task for k in MODEL_KINDS.values())


def _kind_of_model(model: nn.Module) -> ModelKind:
    for kind in MODEL_KINDS.values():
        if isinstance(model, kind.network):
            return kind
    known = [k.network.__name__ for k in MODEL_KINDS.values()]
    raise TypeError(f"save_model needs one of {known}, not {type(model).__name__}")


@dataclass
class LoadedModel:
    """A model rebuilt from a file (in eval mode) with the settings it was saved with.

    ``sbt_settings`` is None only for a classifier of static images."""

    model: SpikeDHSStereo | SpikeDHSClassifier
    genotype: StereoGenotype | ClassifierGenotype
    sbt_settings: SBTSettings | None
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _sbt(settings: SBTSettings | dict) -> SBTSettings:
    if isinstance(settings, SBTSettings):
        return settings
    if isinstance(settings, dict):
        return SBTSettings.from_dict(settings)
    raise TypeError(f"sbt_settings must be SBTSettings or a dict, not {type(settings).__name__}")


def save_model(path: str | os.PathLike, model: SpikeDHSStereo | SpikeDHSClassifier, *,
               sbt_settings: SBTSettings | dict | None = None, provenance: dict[str, Any]) -> Path:
    """Write `model` with its genotype, current neurons, SBT settings and provenance; returns the path.

    ``sbt_settings`` is required for networks that read SBT frames (stereo, event classifiers)."""
    kind = _kind_of_model(model)
    if sbt_settings is None and kind.needs_sbt:
        raise ValueError(f"a {kind.task} model needs the SBT settings it was trained with")
    sbt = None if sbt_settings is None else _sbt(sbt_settings)
    genotype = model.current_genotype()
    if sbt is not None and sbt.channels != genotype.in_channels:
        raise ValueError(f"SBT settings give {sbt.channels} channels, the net takes {genotype.in_channels}")
    try:
        provenance_json = json.dumps(provenance, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"provenance must be JSON-serialisable: {e}") from None
    metadata = {
        KEY_FORMAT: json.dumps(FORMAT_VERSION),
        KEY_GENOTYPE: genotype.to_json(indent=None),
        KEY_PROVENANCE: provenance_json,
        KEY_BN_FOLDED: json.dumps(not _has_batchnorm(model)),
        KEY_LIBRARY: json.dumps(eventstereo.__version__),
    }
    if sbt is not None:
        metadata[KEY_SBT] = json.dumps(sbt.to_dict(), sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _meta_json(meta: dict[str, str], key: str, source: str) -> Any:
    if key not in meta:
        raise InputError(f"not an eventstereo model file: metadata key {key!r} is missing", source=source)
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise InputError(f"metadata {key!r} is not valid JSON ({e})", source=source) from None


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The raw metadata of a model file, without loading its tensors (InputError if unreadable)."""
    source = os.fspath(path)
    if not Path(path).is_file():
        raise InputError("no such model file", source=source)
    try:
        with safe_open(source, framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for every kind of corruption
        raise InputError(f"not a readable safetensors model file ({type(e).__name__}: {e})",
                         source=source) from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", *,
               fold_bn: bool = False, task: str | None = "stereo") -> LoadedModel:
    """Rebuild a saved model on `device`, in eval mode. ``fold_bn``: fold BatchNorm into the convs
    (the deployed, spike-only form; inference only). ``task``: the kind of network the caller can
    use (one of :data:`TASKS`; a file of another kind is an InputError), None for any."""
    source = os.fspath(path)
    meta = read_metadata(path)
    version = _meta_json(meta, KEY_FORMAT, source)
    if not isinstance(version, int) or version < 1:
        raise InputError(f"bad format version {version!r}", source=source)
    if version > FORMAT_VERSION:
        raise InputError(f"format version {version} is newer than this eventstereo reads ({FORMAT_VERSION})",
                         source=source)
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, not {task!r}")
    genotype = genotype_from_dict(_meta_json(meta, KEY_GENOTYPE, source), source=f"{source} [genotype]")
    kind = next(k for k in MODEL_KINDS.values() if isinstance(genotype, k.genotype))
    if task is not None and kind.task != task:
        raise InputError(f"this is a {kind.task} model; a {task} model is needed here", source=source)
    sbt = None
    if kind.needs_sbt or KEY_SBT in meta:
        sbt_d = _meta_json(meta, KEY_SBT, source)
        try:
            sbt = SBTSettings.from_dict(sbt_d)
        except (TypeError, ValueError) as e:
            raise InputError(f"bad SBT settings in metadata ({e})", source=source) from None
    if sbt is not None and sbt.channels != genotype.in_channels:
        raise InputError(f"SBT settings give {sbt.channels} channels, the net takes {genotype.in_channels}",
                         source=source)
    provenance = _meta_json(meta, KEY_PROVENANCE, source)
    if not isinstance(provenance, dict):
        raise InputError("metadata provenance must be a JSON object", source=source)
    folded = bool(json.loads(meta.get(KEY_BN_FOLDED, "false")))
    try:
        with safe_open(source, framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise InputError(f"cannot read the weights ({type(e).__name__}: {e})", source=source) from None
    model = kind.network(genotype)
    if folded:
        fold_batchnorms(model.eval())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"weights do not match the genotype in the file: {e}", source=source) from None
    model.eval()
    if fold_bn and not folded:
        fold_batchnorms(model)
    model.to(device)
    return LoadedModel(model=model, genotype=genotype, sbt_settings=sbt, provenance=provenance,
                       path=Path(path))


def load_bundled_model(device: str | torch.device = "cpu", *, fold_bn: bool = False) -> LoadedModel:
    """The demo model shipped in the package (InputError with a hint if this installation lacks it)."""
    if not BUNDLED_MODEL.is_file():
        raise InputError("the bundled demo model is missing from this installation; train one (tools/) and "
                         "save it there with eventstereo.model.io.save_model, or pass a model file",
                         source=str(BUNDLED_MODEL))
    return load_model(BUNDLED_MODEL, device, fold_bn=fold_bn)

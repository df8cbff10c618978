"""The SpikeDHS-Stereo network: genotype, op vocabulary, cells, builder and model files."""

from eventstereo.model.genotype import (
    DEFAULT_GENOTYPE,
    GENOTYPES,
    NetGenotype,
    NeuronSettings,
    StereoGenotype,
    load_genotype,
    neuron_layer_names,
)
from eventstereo.model.io import BUNDLED_MODEL, LoadedModel, load_bundled_model, load_model, save_model
from eventstereo.model.network import Cell, SpikeDHSStereo, build_stereo_model
from eventstereo.model.ops import OP_TEMPERATURE, OPS, PRIMITIVES, ConvBN

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_GENOTYPE",
    "GENOTYPES",
    "OPS",
    "OP_TEMPERATURE",
    "PRIMITIVES",
    "Cell",
    "LoadedModel",
    "ConvBN",
    "NetGenotype",
    "NeuronSettings",
    "SpikeDHSStereo",
    "StereoGenotype",
    "build_stereo_model",
    "load_bundled_model",
    "load_genotype",
    "load_model",
    "neuron_layer_names",
    "save_model",
]

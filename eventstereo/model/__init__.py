"""The SpikeDHS networks: op table, cells, genotypes (stereo, classification), builders, model files."""

from eventstereo.model.classifier import SpikeDHSClassifier, build_classifier
from eventstereo.model.genotype import (
    DEFAULT_GENOTYPE,
    GENOTYPES,
    ClassifierGenotype,
    NetGenotype,
    NeuronSettings,
    StereoGenotype,
    genotype_from_dict,
    load_genotype,
    neuron_layer_names,
    read_genotype,
)
from eventstereo.model.io import BUNDLED_MODEL, LoadedModel, load_bundled_model, load_model, save_model
from eventstereo.model.network import Cell, SpikeDHSStereo, build_stereo_model
from eventstereo.model.ops import OPS, PRIMITIVES, ConvBN, OpSpec

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_GENOTYPE",
    "GENOTYPES",
    "OPS",
    "PRIMITIVES",
    "Cell",
    "ClassifierGenotype",
    "LoadedModel",
    "ConvBN",
    "NetGenotype",
    "NeuronSettings",
    "OpSpec",
    "SpikeDHSClassifier",
    "SpikeDHSStereo",
    "StereoGenotype",
    "build_classifier",
    "build_stereo_model",
    "genotype_from_dict",
    "load_bundled_model",
    "load_genotype",
    "load_model",
    "neuron_layer_names",
    "read_genotype",
    "save_model",
]

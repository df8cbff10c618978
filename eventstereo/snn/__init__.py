"""Spiking neural network core: neurons, surrogate gradients, fused recurrences, firing-rate probes,
operation counts and energy, BatchNorm folding (REFERENCE §4, §5, §10).

Everything that builds a spiking network (the stereo model, the NAS supernets, TPS/HNS/DGS) takes its
neurons from here, so a searched setting runs unchanged in the deployed network.
"""

from eventstereo.snn.bnfold import fold_batchnorms, fold_bn
from eventstereo.snn.energy import E_AC_PJ, E_MAC_PJ, EnergyReport, LayerOps, count_ops, energy_mj
from eventstereo.snn.layers import SeqToANN
from eventstereo.snn.neurons import (
    KINDS,
    ALIFNode,
    BaseNeuron,
    BinaryNode,
    IFNode,
    LIFNode,
    MemoryModule,
    NeuronSpec,
    ReLUNode,
    StepModule,
    detach_net,
    make_neuron,
    neurons,
    reset_net,
    set_step_mode,
)
from eventstereo.snn.probes import FiringRateProbe
from eventstereo.snn.surrogates import (
    SURROGATES,
    ArcTan,
    Dspike,
    Sigmoid,
    SuperSpike,
    Surrogate,
    Triangle,
    make_surrogate,
    spike,
)

__all__ = [
    "KINDS",
    "NeuronSpec",
    "StepModule",
    "MemoryModule",
    "BaseNeuron",
    "IFNode",
    "LIFNode",
    "BinaryNode",
    "ALIFNode",
    "ReLUNode",
    "make_neuron",
    "neurons",
    "reset_net",
    "detach_net",
    "set_step_mode",
    "SeqToANN",
    "Surrogate",
    "Dspike",
    "Triangle",
    "SuperSpike",
    "ArcTan",
    "Sigmoid",
    "SURROGATES",
    "make_surrogate",
    "spike",
    "FiringRateProbe",
    "LayerOps",
    "EnergyReport",
    "count_ops",
    "energy_mj",
    "E_AC_PJ",
    "E_MAC_PJ",
    "fold_bn",
    "fold_batchnorms",
]

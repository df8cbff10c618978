"""The spatial-temporal half of the paper: TPS (time constants), HNS (neuron kinds, with the
energy-aware loss) and DGS (surrogate temperatures), on any network built from eventstereo's neurons.

    search = attach(model, tps=True, hns=True, dgs_layers=["stem"], energy_lambda=0.1)
    train(model, ..., hooks=[search])        # or call its TrainHook methods from your own loop
    specs = search.decide(average_copy)      # plain neurons with the decided specs
    search.save_history(out_dir)             # JSON + PNG
"""

from nas.temporal.dgs import DGSNeuron
from nas.temporal.hns import ENERGY_FACTORS, HybridMixture, energy_aware_loss
from nas.temporal.mixture import NeuronMixture
from nas.temporal.search import TemporalConfig, TemporalSearch, attach, neuron_table, resolve_layers
from nas.temporal.tps import TimeConstantMixture

__all__ = ["ENERGY_FACTORS", "DGSNeuron", "HybridMixture", "NeuronMixture", "TemporalConfig",
           "TemporalSearch", "TimeConstantMixture", "attach", "energy_aware_loss", "neuron_table",
           "resolve_layers"]

"""Decoding: top-2 non-skip edges, argmax op, strongest first, Viterbi path; deterministic; the decoded
genotype builds a SpikeDHS-CLA that saves, loads and evaluates."""

import torch

from eventstereo.model.genotype import ClassifierGenotype, edge_endpoints
from eventstereo.model.io import load_model, save_model
from nas.classify.train import evaluate
from nas.decode import classifier_genotype, decode_cell, viterbi_path
from nas.space import ClassifierSupernet


def test_cell_decoding_rules():
    w = torch.full((9, 3), 1 / 3)
    # node 1 (edges 2, 3, 4): edge 4 has the biggest weight overall but on skip -> not kept
    w[2] = torch.tensor([0.1, 0.2, 0.7])
    w[3] = torch.tensor([0.2, 0.6, 0.2])
    w[4] = torch.tensor([0.9, 0.05, 0.05])
    w[0] = torch.tensor([0.6, 0.3, 0.1])  # node 0 keeps both its edges; edge 0's op is skip (argmax)
    w[8] = torch.tensor([0.0, 0.2, 0.8])  # node 2: edge 8 strongest, listed first
    cell = decode_cell(w, 3)
    assert [p for p in cell if edge_endpoints(p[0])[1] == 1] == [(2, "snn_b5"), (3, "snn_b3")]
    assert (0, "skip_connect") in cell and len(cell) == 6
    assert [p for p in cell if edge_endpoints(p[0])[1] == 2][0] == (8, "snn_b5")
    assert decode_cell(w, 3) == cell  # deterministic, ties by index (edges 5-7 tie on node 2)
    assert [p for p in cell if edge_endpoints(p[0])[1] == 2][1] == (5, "skip_connect")  # op tie: index 0


def test_viterbi_takes_the_most_probable_path_not_the_greedy_one():
    w = torch.zeros(3, 4, 3)
    w[0, 0, 1], w[0, 1, 0] = 0.6, 0.4  # layer 0: greedy stays at 0
    w[1, 0, 1], w[1, 1, 0] = 0.5, 0.5  # from level 0
    w[1, 1, 1], w[1, 2, 0] = 0.05, 0.95  # from level 1: strongly down
    w[2, 0, 1], w[2, 1, 0] = 0.5, 0.5
    w[2, 1, 1], w[2, 2, 0] = 0.5, 0.5
    w[2, 2, 1], w[2, 3, 0] = 0.99, 0.01
    # paths: 0-0-0 .6*.5*.5=.15, 0-0-1 .15, 0-1-1 .6*.5*.5, 1-2-2: .4*.95*.99 = .376
    assert viterbi_path(w) == (1, 2, 2)


def test_decoded_genotype_builds_saves_loads_and_evaluates(tmp_path):
    torch.manual_seed(0)
    net = ClassifierSupernet(num_classes=4, in_channels=1, channels=2, cells=3, nodes=3, timesteps=2,
                             stem_multiplier=2)
    with torch.no_grad():
        net.alphas.copy_(torch.randn(9, 3, generator=torch.Generator().manual_seed(2)))
    g = classifier_genotype(net.alphas, net.config, name="decoded")
    assert g == classifier_genotype(net.alphas.clone(), net.config, name="decoded")
    path = tmp_path / "g.json"
    path.write_text(g.to_json())
    assert ClassifierGenotype.from_json(path.read_text()) == g  # eventstereo loads it as is
    from eventstereo.model.classifier import build_classifier

    model = build_classifier(g)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6) % 4
    model.train()
    model(x)
    saved = save_model(tmp_path / "m.safetensors", model.eval(), provenance={"dataset": "test"})
    loaded = load_model(saved, task="classification")
    a, b = evaluate(model, x, y, probe=True), evaluate(loaded.model, x, y, probe=True)
    assert a == b and 0 <= a["accuracy"] <= 100 and set(a["firing_rates"]) >= {"stem.neuron", "cell2.node2"}

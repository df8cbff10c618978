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


def test_separately_searched_reduction_cells_decode_to_a_reduce_cell():
    torch.manual_seed(0)
    net = ClassifierSupernet(num_classes=3, in_channels=1, channels=2, cells=3, nodes=2, timesteps=1,
                             stem_multiplier=2, reduction="separate")
    assert {n for n, _ in net.named_parameters() if "alphas" in n} == {"alphas", "alphas_reduce"}
    assert len(net.arch_parameters()) == 2
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    assert net.alphas.grad.abs().sum() > 0 and net.alphas_reduce.grad.abs().sum() > 0
    with torch.no_grad():
        net.alphas_reduce[:, 0] = 5.0  # skip everywhere in the reduction cells
    g = classifier_genotype(net.alphas, net.config, alphas_reduce=net.alphas_reduce)
    assert g.reduce_cell is not None and {op for _, op in g.reduce_cell} == {"skip_connect"}
    assert ClassifierGenotype.from_json(g.to_json()) == g


def test_trellis_parameters_decode_to_a_stereo_genotype_eventstereo_builds():
    from eventstereo.model.network import build_stereo_model
    from nas.decode import stereo_genotype
    from nas.space import SearchCell, Trellis

    torch.manual_seed(0)

    def trellis(layers, dim):
        def cell(s, c0, c1):
            return SearchCell(3, c0, c1, 2**s, dim)

        return Trellis(layers, 4, lambda s: 3 * 2**s, cell, dim=dim)

    feat, match = trellis(2, 2), trellis(4, 3)
    with torch.no_grad():
        match.betas.copy_(torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(5)) * 3)
    alphas = torch.randn(9, 3, generator=torch.Generator().manual_seed(4))
    g = stereo_genotype((alphas, feat.beta_weights()), (alphas, match.beta_weights()), nodes=3,
                        filter_multiplier=2, max_disparity=23)
    assert g.matching.path == viterbi_path(match.beta_weights()) and len(g.feature.path) == 2
    assert g.feature.cell == decode_cell(torch.softmax(alphas.double(), -1), 3)
    model = build_stereo_model(g)
    assert model.genotype == g

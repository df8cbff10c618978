import json

import pytest

from eventstereo.errors import InputError
from eventstereo.model import GENOTYPES, StereoGenotype, load_genotype, neuron_layer_names
from eventstereo.model.genotype import NeuronSettings, disparity_planes, edge_endpoints, n_edges
from eventstereo.snn.neurons import NeuronSpec


def _published_dict():
    return json.loads(GENOTYPES["spikedhs_stereo"].to_json())


def test_published_genotype_matches_reference():
    g = load_genotype("spikedhs_stereo")
    assert g is GENOTYPES["spikedhs_stereo"]
    assert g.feature.path == (1, 0) and g.matching.path == (1, 2, 2, 1)
    ops = ("skip_connect", "snn_b3", "snn_b5")
    assert g.feature.cell == tuple((e, ops[o]) for e, o in [[1, 1], [0, 1], [3, 2], [2, 1], [7, 1], [8, 1]])
    assert g.matching.cell == tuple((e, ops[o]) for e, o in [[0, 1], [1, 2], [4, 2], [3, 2], [8, 1], [6, 1]])
    assert (g.nodes, g.in_channels, g.max_disparity, g.filter_multiplier) == (3, 5, 63, 8)
    assert g.disparity_planes == 21
    assert g.resolution_multiple == 12


def test_edge_numbering():
    assert n_edges(3) == 9
    assert [edge_endpoints(e) for e in range(9)] == [
        (0, 0), (1, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2), (3, 2)
    ]
    assert disparity_planes(63) == 21 and disparity_planes(11) == 4


def test_node_temperature_rule_first_non_skip_op():
    g = GENOTYPES["spikedhs_stereo"]
    # feature node1 lists [3, snn_b5] before [2, snn_b3]; matching node0 lists snn_b3 first
    assert [g.feature.node_temperature(j) for j in range(3)] == [3.0, 5.0, 3.0]
    assert [g.matching.node_temperature(j) for j in range(3)] == [3.0, 5.0, 3.0]
    d = _published_dict()
    d["feature"]["cell"][2] = [3, "skip_connect"]  # node1: skip first, then snn_b3
    g2 = StereoGenotype.from_dict(d)
    assert g2.feature.node_temperature(1) == 3.0
    assert g2.neurons.spec_for("feature.cell0.node1", 5.0).temperature == 5.0


def test_json_round_trip_and_integer_ops():
    g = GENOTYPES["spikedhs_stereo"]
    override = NeuronSpec(kind="alif", tau=0.4, temperature=2.5)
    neurons = NeuronSettings(default=NeuronSpec(tau=0.3), overrides={"matching.cell2.node0": override})
    g2 = g.with_changes(neurons=neurons)
    back = StereoGenotype.from_json(g2.to_json())
    assert back == g2
    assert back.neurons.spec_for("matching.cell2.node0", 5.0) == override  # override wins over the op
    d = _published_dict()
    d["feature"]["cell"] = [[1, 1], [0, 1], [3, 2], [2, 1], [7, 1], [8, 1]]  # the logs' integer form
    assert StereoGenotype.from_dict(d).feature == g.feature


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["matching"].update(path=[1, 3]), "matching.path"),
        (lambda d: d["matching"].update(path=[2, 2]), "matching.path"),
        (lambda d: d["feature"].update(path=[0, 4]), "feature.path[1]"),
        (lambda d: d["feature"].update(path=[]), "feature.path"),
        (lambda d: d["feature"]["cell"].__setitem__(0, [9, "snn_b3"]), "feature.cell[0] edge"),
        (lambda d: d["feature"]["cell"].__setitem__(0, [0, "snn_b3"]), "feature.cell[1]"),  # duplicate edge 0
        (lambda d: d["feature"]["cell"].__setitem__(0, [1, "conv7"]), "feature.cell[0] op"),
        (lambda d: d["feature"]["cell"].__setitem__(0, [1, 7]), "feature.cell[0] op"),
        (lambda d: d["matching"].update(cell=[[0, 1], [1, 2], [4, 2], [3, 2]]), "matching.cell"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(filter_multiplier=0), "filter_multiplier"),
        (lambda d: d.update(max_disparity=1.5), "max_disparity"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["neurons"]["overrides"].update({"feature.cell9.node0": {}}), "neurons.overrides"),
        (lambda d: d["neurons"]["default"].update(kind="hodgkin"), "neurons.default"),
        (lambda d: d["neurons"]["default"].update(tau=2.0), "neurons.default"),
        (lambda d: d["neurons"]["overrides"].update({"feature.stem0.neuron": {"theta": -1}}), "neurons"),
    ],
)
def test_validation_errors_name_the_field(mutate, field):
    d = _published_dict()
    mutate(d)
    with pytest.raises(InputError, match="genotype field") as info:
        StereoGenotype.from_dict(d, source="my.json")
    assert field in str(info.value)
    assert str(info.value).startswith("my.json: ")


def test_load_genotype_from_file_and_errors(tmp_path):
    g = GENOTYPES["spikedhs_stereo"].with_changes(name="mine", filter_multiplier=4)
    path = tmp_path / "mine.json"
    path.write_text(g.to_json())
    assert load_genotype(path) == g
    assert load_genotype(str(path)) == g
    with pytest.raises(InputError, match="no bundled genotype"):
        load_genotype(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON") as info:
        load_genotype(bad)
    assert str(bad) in str(info.value)


def test_layer_names_follow_path_and_reduce():
    g = GENOTYPES["spikedhs_stereo"]
    names = neuron_layer_names(g)
    assert names[:2] == ["feature.stem0.neuron", "feature.stem1.neuron"]
    assert "matching.cell3.node2" in names and "matching.reduce.neuron" in names
    assert len(names) == 2 + 6 + 1 + 2 + 12 + 1
    d = _published_dict()
    d["matching"]["path"] = [1, 0]
    assert "matching.reduce.neuron" not in neuron_layer_names(StereoGenotype.from_dict(d))


def test_neuron_settings_and_a_built_model_copy_and_pickle():
    import copy
    import pickle

    from eventstereo.model import build_stereo_model

    settings = NeuronSettings(default=NeuronSpec(tau=0.3),
                              overrides={"feature.stem1.neuron": NeuronSpec(tau=0.1)})
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert copy.deepcopy(settings) == settings
    model = build_stereo_model(filter_multiplier=1, max_disparity=8)
    clone = copy.deepcopy(model)  # what a weight average or a search copies
    assert clone.genotype == model.genotype
    assert all(a is not b for a, b in zip(clone.parameters(), model.parameters()))

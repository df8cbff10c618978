"""Bi-level search: warm-up keeps the architecture still, then it moves; a resumed run equals an
unbroken one; two gloo processes under torchrun-style environment variables run the same loop."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.search import SearchConfig, bilevel_search, classification_loss, split_halves
from nas.space import ClassifierSupernet

N = 32


def _data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(N) % 3
    x = torch.randn(N, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    return x, y


def _net():
    torch.manual_seed(0)
    return ClassifierSupernet(num_classes=3, in_channels=1, channels=2, cells=3, nodes=2, timesteps=2,
                              stem_multiplier=2)


def _run(out, **kw):
    x, y = _data()
    net = _net()
    cfg = SearchConfig(epochs=3, warmup_epochs=1, batch_size=8, arch_lr=0.01, checkpoint_every=1)
    state = bilevel_search(net, N, lambda idx: (x[idx], y[idx]), classification_loss, cfg, out,
                           progress=False, model_config=net.config, **kw)
    return net, state


def test_halves_are_disjoint_and_seeded():
    a, b = split_halves(11, 3)
    assert len(a) == len(b) == 5 and not set(a.tolist()) & set(b.tolist())
    assert torch.equal(split_halves(11, 3)[0], a)


def test_warm_up_then_the_architecture_moves_and_resume_equals_unbroken(tmp_path):
    net, state = _run(tmp_path / "unbroken")
    assert state.epoch == 3 and state.step == 6 and len(state.history) == 3
    first, last = torch.tensor(state.history[0]["alphas"][0]), torch.tensor(state.history[-1]["alphas"][0])
    start = torch.softmax(_net().alphas.detach(), -1)
    torch.testing.assert_close(first, start)  # warm-up epoch: alphas untouched
    assert (last - first).abs().max() > 1e-3
    # killed after step 3 (mid-epoch, after its checkpoint), then resumed in a new process's worth of objects
    _, partial = _run(tmp_path / "broken", stop_after_steps=3)
    assert partial.step == 3
    resumed, final = _run(tmp_path / "broken")
    assert final.step == 6 and final.history == state.history
    for (k, a), b in zip(net.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


_DDP_SCRIPT = r"""
import json, os, sys, torch
sys.path.insert(0, os.environ["REPO"])
from eventstereo.training.loop import init_distributed
from nas.search import SearchConfig, bilevel_search, classification_loss
from nas.space import ClassifierSupernet
torch.set_num_threads(1)
info = init_distributed("cpu")
g = torch.Generator().manual_seed(0)
y = torch.arange(32) % 3
x = torch.randn(32, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
torch.manual_seed(0)
net = ClassifierSupernet(num_classes=3, in_channels=1, channels=2, cells=2, nodes=2, timesteps=1,
                         stem_multiplier=1)
cfg = SearchConfig(epochs=2, warmup_epochs=1, batch_size=8, arch_lr=0.01)
st = bilevel_search(net, 32, lambda i: (x[i], y[i]), classification_loss, cfg, sys.argv[1], dist_info=info,
                    progress=False)
print(json.dumps({"rank": info.rank, "alphas": net.alphas.tolist(), "steps": st.step}))
"""


def test_two_gloo_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    repo = str(Path(__file__).resolve().parents[2])
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), REPO=repo, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / "out")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert results[0]["steps"] == results[1]["steps"] == 4  # 16 per half, 4 per rank per step: 2 epochs x 2
    assert results[0]["alphas"] == results[1]["alphas"]  # DDP kept the ranks in step
    assert (tmp_path / "out" / "checkpoint.pt").is_file()  # rank 0 wrote it


def test_retrain_resumes_exactly(tmp_path):
    from eventstereo.model.classifier import build_classifier
    from nas.classify.data import Splits
    from nas.classify.train import RetrainConfig, retrain
    from nas.decode import classifier_genotype

    x, y = _data()
    data = Splits(x[:24], y[:24], x[24:], y[24:], num_classes=3, augment=True)  # augmentation is seeded too
    g = classifier_genotype(_net().alphas, _net().config)

    class Killed(Exception):
        pass

    def kill(epoch, record):
        raise Killed

    def run(out, **kw):
        torch.manual_seed(1)
        model = build_classifier(g)
        return model, retrain(model, data, RetrainConfig(epochs=2, batch_size=8), out, progress=False, **kw)

    whole, h_whole = run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", on_epoch=kill)  # killed after epoch 1 and its checkpoint
    resumed, h_resumed = run(tmp_path / "b")  # the same command again continues after epoch 1
    assert h_resumed == h_whole and len(h_whole) == 2
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    from eventstereo.errors import InputError

    with pytest.raises(InputError, match="written with epochs=2, not 3"):
        retrain(build_classifier(g), data, RetrainConfig(epochs=3, batch_size=8), tmp_path / "b",
                progress=False)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    from eventstereo.errors import InputError

    _run(tmp_path, stop_after_steps=1)
    x, y = _data()
    net = _net()
    cfg = SearchConfig(epochs=5, warmup_epochs=1, batch_size=8, arch_lr=0.01, checkpoint_every=1)
    with pytest.raises(InputError, match="written with epochs=3, not 5.*--no-resume"):
        bilevel_search(net, N, lambda idx: (x[idx], y[idx]), classification_loss, cfg, tmp_path,
                       progress=False)

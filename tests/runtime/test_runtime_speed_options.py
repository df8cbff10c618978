"""Speed options of the runtime that can be checked on a CPU: allocator setting, CUDA-graph wrapper
pass-through and in-place reset, the estimator choice of the session."""

import torch

from eventstereo.runtime.cuda_graph import GraphedStep
from eventstereo.runtime.memory import keep_freed_memory
from eventstereo.runtime.session import SessionOptions
from eventstereo.snn.neurons import LIFNode


class _Toy(torch.nn.Module):
    max_disparity = 3

    def __init__(self):
        super().__init__()
        self.lif = LIFNode()

    def reset(self):
        self.lif.reset()

    def step(self, left, right):
        return self.lif(left + right)


def test_keep_freed_memory_reports_whether_it_applied():
    assert keep_freed_memory() in (True, False)
    torch.empty(1 << 22).fill_(1.0)  # allocation still works afterwards


def test_stream_options_keep_freed_memory_unless_asked_to_release_it(monkeypatch):
    from eventstereo.runtime import stream_command

    calls = []
    monkeypatch.setattr(stream_command, "keep_freed_memory", lambda: calls.append(1) or True)
    parser = stream_command.build_parser()
    stream_command.session_options(parser.parse_args([]))
    assert calls == [1]
    stream_command.session_options(parser.parse_args(["--release-memory"]))
    assert calls == [1]


def test_graphed_step_is_the_plain_step_off_cuda_and_reset_zeroes_state_in_place():
    model, ref = _Toy(), _Toy()
    g = GraphedStep(model)
    x = torch.rand(1, 2, 3, 4) * 0.6
    with torch.inference_mode():
        for _ in range(3):
            assert torch.equal(g.step(x, x), ref.step(x, x))
    g.reset()  # no graph captured: the model's own reset
    assert model.lif.v is None
    with torch.inference_mode():
        g.step(x, x)
    state = model.lif.v
    g._graph = object()  # as after a capture: reset must keep the state tensors where they are
    g.reset()
    assert model.lif.v is state and not state.any()


def test_session_options_name_the_estimator_and_have_no_compile():
    assert SessionOptions().subpixel_impl == "auto"
    assert not hasattr(SessionOptions(), "compile") and SessionOptions().cuda_graph is False

"""Fixtures shared by the whole suite."""

import importlib.util
from pathlib import Path

import pytest
import torch

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors on a shared 2-core machine run several times faster on one thread (and a test that
    changes the thread count cannot leak it into the next)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def load_tool():
    """Import a tools/*.py script by name (tools/ is not a package): ``load_tool("eval_stereo").main([...])``.

    Each call executes the script afresh, as a separate import would, so no state is shared between calls;
    the fixture itself holds none, which is why it is session-scoped: module-scoped fixtures and hypothesis
    tests can use it too."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load

"""`bench parts` attributes a window's time to its parts, the convolutions among them."""

import torch
import torch.nn.functional as F

from eventstereo.bench.parts import PARTS, measure
from eventstereo.model.io import load_bundled_model


def test_parts_count_the_convolutions_and_put_the_functions_back():
    gen = torch.Generator().manual_seed(0)
    frames = [tuple((torch.rand(1, 5, 48, 72, generator=gen) < 0.3).float() * 2 - 1 for _ in range(2))
              for _ in range(2)]
    originals = {name: getattr(F, name) for name in ("conv2d", "conv3d")}
    table = measure(lambda: load_bundled_model(fold_bn=True).model.eval(), frames, rounds=1)
    assert {name: getattr(F, name) for name in originals} == originals  # patches undone
    for tag in ("today", "now"):
        ms = table[tag]
        assert set(ms) == set(PARTS)
        # every conv runs inside the window: a count of zero would mean the patch missed the calls
        assert 0 < ms["convolutions"] < ms["window"]
        assert 0 < ms["feature net"] < ms["window"]


def test_gc_is_off_while_timing_and_restored_after():
    import gc

    from eventstereo.bench._common import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own setting is left as it was
    finally:
        gc.enable()

"""The shipped demo model (what `make run` and the app load by default) still sees depth.

No other test loads eventstereo/model/weights/demo.safetensors, so a corrupt, mis-exported or
regressed file would only show when a user runs the demo. Three unseen synthetic scenes (seeds >= 1000
are never trained on), streamed with warm state exactly as `eventstereo stream` does; the bundled
model scores about 88 % 1PA on these 12 windows, an untrained one 0 %.
"""

from __future__ import annotations

import math

from eventstereo.model.io import BUNDLED_MODEL, load_bundled_model
from eventstereo.runtime.session import SessionOptions, StreamSession
from eventstereo.sources.synthetic import SyntheticConfig, SyntheticStereoSource

SEEDS = (1000, 1001, 1002)
WINDOWS = 4
ONE_PA_FLOOR = 80.0  # % of pixels within 1 px, mean over the seeds; the model scores ~88 %


def test_bundled_demo_model_holds_its_accuracy_on_unseen_scenes():
    assert BUNDLED_MODEL.is_file(), f"{BUNDLED_MODEL} is missing"
    loaded = load_bundled_model()
    assert loaded.sbt_settings.window_us == SyntheticConfig().window_us
    options = SessionOptions(overlap=False, measure_rates=False)
    scores, windows = [], 0
    for seed in SEEDS:
        source = SyntheticStereoSource(SyntheticConfig(), seed=seed)
        with StreamSession(source, loaded.model, loaded.sbt_settings, options) as session:
            for result in session.run(max_windows=WINDOWS):
                assert result.disparity.shape == (source.sensor_size[1], source.sensor_size[0])
                windows += 1
            summary = session.summary()
        assert summary["gt_windows"] == WINDOWS
        scores.append(summary["one_pa"])
    assert windows == len(SEEDS) * WINDOWS
    one_pa = sum(scores) / len(scores)
    assert math.isfinite(one_pa) and one_pa >= ONE_PA_FLOOR, f"1PA {one_pa:.1f} % per seed {scores}"

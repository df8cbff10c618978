"""The MVSEC recipe of tools/README.md, run command by command on a tiny MVSEC-layout recording.

The commands are read from the README itself; only size options are appended (argparse lets the last
value win), so a renamed option, a moved file or a changed default breaks this test, not a user's run.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from eventstereo.sources.cache import SBTCache

REPO = Path(__file__).resolve().parents[2]
SECTION = "## The paper's stereo setting: MVSEC split 1"

SHRINK = {  # per tool: options appended to make the command run in seconds on the tiny recording
    "prepare_mvsec.py": ["--max-windows", "8", "--quiet"],
    "search_stereo.py": ["--crop", "48", "64", "--filter-multiplier", "1", "--max-disparity", "12",
                         "--matching-layers", "2", "--seq-len", "1", "--epochs", "2", "--warmup-epochs", "1",
                         "--checkpoint-every", "1", "--no-progress", "--threads", "1"],
    "train_stereo.py": ["--iterations", "2", "--crop", "48", "64", "--filter-multiplier", "1",
                        "--max-disparity", "12", "--seq-len", "2", "--workers", "0", "--validate-every", "1",
                        "--checkpoint-every", "1", "--no-progress", "--device", "cpu"],
    "eval_stereo.py": ["--windows", "2", "--no-rates", "--device", "cpu"],
}


def recipe_commands() -> list[list[str]]:
    """The shell commands of the README section's code block, as argv lists (comments skipped)."""
    text = (REPO / "tools" / "README.md").read_text()
    assert SECTION in text, "tools/README.md lost its MVSEC recipe section"
    block = re.search(r"```sh\n(.*?)```", text[text.index(SECTION):], re.S)
    assert block, "the MVSEC recipe has no ```sh block"
    lines = [ln for ln in block.group(1).replace("\\\n", " ").splitlines() if ln.strip()]
    return [shlex.split(ln) for ln in lines if not ln.lstrip().startswith("#")]


def test_recipe_lists_prepare_train_and_evaluate_with_the_ddes_convention():
    cmds = recipe_commands()
    tools = [Path(c[1]).name for c in cmds]
    assert tools == ["prepare_mvsec.py", "search_stereo.py", "train_stereo.py", "eval_stereo.py"]
    assert all(c[0] == ".venv/bin/python" for c in cmds)
    assert "ddes" in cmds[0] and "ddes" in cmds[3] and "--json" in cmds[3]
    search_out = cmds[1][cmds[1].index("--out") + 1]
    assert cmds[2][cmds[2].index("--genotype") + 1] == f"{search_out}/genotype.json"  # retrain what was found
    assert (REPO / cmds[2][cmds[2].index("--config") + 1]).is_file()


def test_recipe_runs_end_to_end_on_a_tiny_mvsec_layout(tmp_path, monkeypatch, capsys, load_tool):
    from eventstereo.sources.mvsec_synth import make_split_recordings

    root = make_split_recordings(tmp_path / "MVSEC", ("indoor_flying1", "indoor_flying2", "indoor_flying3"))
    for name in ("tools", "eventstereo"):  # the recipe runs from the repository root
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)  # so its relative runs/ paths land here
    for cmd in recipe_commands():
        tool = Path(cmd[1]).name
        argv = [str(root) if a == "MVSEC" else a for a in cmd[2:]]
        if "--device" in argv:  # the recipe's GPU is checked when parsed: this machine runs it on the CPU
            argv[argv.index("--device") + 1] = "cpu"
        assert load_tool(tool.removesuffix(".py")).main(argv + SHRINK[tool]) == 0, f"{tool} failed"
        out = capsys.readouterr().out
    cache = tmp_path / "runs" / "mvsec-split1-cache"
    for subset in ("train", "val", "test"):
        with SBTCache(cache / f"split1_{subset}.h5") as c:
            assert len(c) == 8 and c.gt_convention == "ddes" and c.has_gt
    assert (tmp_path / "runs" / "mvsec-split1-search" / "genotype.json").is_file()
    assert (tmp_path / "runs" / "mvsec-split1" / "model.safetensors").is_file()
    row = json.loads(out.splitlines()[-1])
    assert row["gt_convention"] == "ddes" and row["gt_windows"] == 2
    assert row["published"]["SpikeDHS-Stereo+HNS"]["one_pa"] == pytest.approx(92.4)

"""Plots of the temporal search's history: tau (and rho) per layer over iterations (TPS), surrogate
temperature per layer (DGS). PNG through matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["plot_history"]


def _series(entries: list[dict], value: str) -> dict[str, tuple[list[int], list[float]]]:
    lines: dict[str, tuple[list[int], list[float]]] = {}
    for e in entries:
        if value not in e:
            continue
        label = e["layer"] + (f" ({e['kind']})" if e.get("nested") else "")
        xs, ys = lines.setdefault(label, ([], []))
        xs.append(int(e["iteration"]))
        ys.append(float(e[value]))
    return lines


def _plot(lines: dict[str, tuple[list[int], list[float]]], ylabel: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    columns = max(1, math.ceil(len(lines) / 24))
    fig, ax = plt.subplots(figsize=(7 + 2.5 * columns, 4.5), dpi=100)
    for label, (xs, ys) in lines.items():
        ax.plot(xs, ys, marker=".", drawstyle="steps-post", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="xx-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=columns)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_history(history: dict, out_dir: Path) -> dict[str, Path]:
    """Write tps_tau.png (one line per layer), tps_rho.png (ALIF layers) and dgs_temperature.png."""
    out: dict[str, Path] = {}
    for value, name in (("tau", "tps_tau"), ("rho", "tps_rho")):
        lines = _series(history.get("tps", []), value)
        if lines:
            out[name] = _plot(lines, value, f"TPS: {value} per layer", out_dir / f"{name}.png")
    dgs = history.get("dgs", [])
    if dgs:
        lines = {}
        for e in dgs:
            for layer, b in e.items():
                if layer != "iteration":
                    xs, ys = lines.setdefault(layer, ([], []))
                    xs.append(int(e["iteration"]))
                    ys.append(float(b))
        out["dgs_temperature"] = _plot(lines, "surrogate temperature b", "DGS: b per layer",
                                       out_dir / "dgs_temperature.png")
    return out

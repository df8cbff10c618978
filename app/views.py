"""Image panels (events, disparity, GT, error) and plots (firing rates, their history, event rate).

Every image has fixed levels and a lookup table set once; a frame only replaces the pixel data, so no
panel rescales per frame and drawing costs the same whatever the scene does.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="#15171c", foreground="#d8dae0")

EVENT_CMAP = pg.ColorMap([0.0, 0.5, 1.0], [(70, 150, 255), (24, 26, 32), (255, 120, 60)])
"""OFF blue, nothing dark, ON orange."""
DISPARITY_CMAP = pg.colormap.get("turbo")
ERROR_CMAP = pg.colormap.get("inferno")
HISTORY_WINDOWS = 200


def disparity_lut() -> np.ndarray:
    """(256, 3) uint8 RGB of the disparity colour map (the recorder's video uses the same)."""
    return DISPARITY_CMAP.getLookupTable(nPts=256, alpha=False)


class ImagePanel(pg.GraphicsLayoutWidget):
    """A titled image with fixed levels and, optionally, a colour bar with its unit."""

    def __init__(self, title: str, cmap: pg.ColorMap, levels: tuple[float, float],
                 bar_label: str | None = None):
        super().__init__()
        self.setMinimumSize(160, 120)
        self.ci.setContentsMargins(2, 2, 2, 8)  # room for the colour bar's end labels
        self.plot = self.addPlot(title=title)
        for axis in ("left", "bottom"):
            self.plot.hideAxis(axis)
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.image.setLookupTable(cmap.getLookupTable(nPts=256))
        self.plot.addItem(self.image)
        self.levels = levels
        self.bar = None
        if bar_label is not None:
            self.bar = pg.ColorBarItem(values=levels, colorMap=cmap, label=bar_label, interactive=False,
                                       width=14)
            self.addItem(self.bar)
        self._shape: tuple[int, ...] | None = None
        self.on_painted = None  # called after each paint: the window measures latency to pixels with it

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().paintEvent(event)
        if self.on_painted is not None:
            self.on_painted()

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = levels
        if self.bar is not None:
            self.bar.setLevels(levels)
        self.image.setLevels(levels)

    def show_image(self, img: np.ndarray) -> None:
        self.image.setImage(img, autoLevels=False, levels=self.levels)
        if img.shape != self._shape:  # fit the view once per image size, not per frame
            self._shape = img.shape
            self.plot.setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0)


def short_layer(name: str) -> str:
    """feature.cell0.node1 -> F c0.n1; matching.stem0.neuron -> M stem0 (axis labels)."""
    part, _, rest = name.partition(".")
    rest = rest.replace(".neuron", "").replace("cell", "c").replace("node", "n")
    return f"{part[:1].upper()} {rest}"


class RatesPanel(pg.GraphicsLayoutWidget):
    """Per-layer firing rates: bars of the current window, and their history over the last windows."""

    def __init__(self):
        super().__init__()
        self.setMinimumSize(400, 250)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.bars_plot = self.addPlot(title="firing rate per layer")
        self.bars_plot.setLabel("bottom", "spikes per neuron and step")
        self.bars_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.bars_plot.setMouseEnabled(False, False)
        self.bars_plot.hideButtons()
        self.bars_plot.invertY(True)
        self.hist_plot = self.addPlot(title=f"firing-rate history (last {HISTORY_WINDOWS} windows)")
        self.hist_plot.setLabel("bottom", "windows ago")
        self.hist_plot.setMouseEnabled(False, False)
        self.hist_plot.hideButtons()
        self.hist_plot.invertY(True)
        self.hist_image = pg.ImageItem()
        self.hist_image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.hist_plot.addItem(self.hist_image)
        font = QtGui.QFont()
        font.setPointSizeF(7.5)
        for plot in (self.bars_plot, self.hist_plot):
            plot.getAxis("left").setStyle(tickFont=font)
            plot.getAxis("left").setWidth(58 if plot is self.bars_plot else 6)
        self.bars = None
        self.names: list[str] = []
        self.xmax = 0.25
        self.history = np.zeros((0, HISTORY_WINDOWS), np.float32)

    def set_layers(self, names: list[str]) -> None:
        self.names = list(names)
        n = len(names)
        ticks = [[(i, short_layer(s)) for i, s in enumerate(names)]]
        for plot in (self.bars_plot, self.hist_plot):
            plot.getAxis("left").setTicks(ticks)
        if self.bars is not None:
            self.bars_plot.removeItem(self.bars)
        self.bars = pg.BarGraphItem(x0=np.zeros(n), y=np.arange(n), height=0.7, width=np.zeros(n),
                                    brush="#4fb3ff", pen=None)
        self.bars_plot.addItem(self.bars)
        self.bars_plot.setYRange(-0.6, n - 0.4, padding=0)
        self.bars_plot.setXRange(0, self.xmax, padding=0)
        self.history = np.full((n, HISTORY_WINDOWS), np.nan, np.float32)  # NaN: no window yet (blank)
        self.hist_image.setImage(self.history, autoLevels=False, levels=(0, self.xmax))
        # row-major image: x = column (window), y = row (layer); newest at the left edge (0 windows ago)
        self.hist_plot.setRange(xRange=(0, HISTORY_WINDOWS), yRange=(0, max(n, 1)), padding=0)
        self.hist_plot.getAxis("left").setTicks([[(i + 0.5, "") for i in range(n)]])  # rows as the bars

    def update_rates(self, rates: dict[str, float]) -> None:
        if not self.names:
            return
        values = np.array([rates.get(n, np.nan) for n in self.names], np.float32)
        values = np.nan_to_num(values)
        top = float(values.max()) if values.size else 0.0
        if top > self.xmax:  # grow the range in steps, never shrink it: no rescaling jitter
            self.xmax = float(np.ceil(top * 4) / 4)
            self.bars_plot.setXRange(0, self.xmax, padding=0)
        self.bars.setOpts(width=values)
        self.history = np.roll(self.history, 1, axis=1)
        self.history[:, 0] = values
        self.hist_image.setImage(self.history, autoLevels=False, levels=(0, self.xmax))


class EventRatePlot(pg.PlotWidget):
    """Events per second (both cameras) over the last windows."""

    def __init__(self):
        super().__init__(title="event rate (both cameras)")
        self.setMinimumSize(160, 120)
        self.setLabel("left", "rate", units="ev/s")
        self.setLabel("bottom", "source time", units="s")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.curve = self.plot(pen=pg.mkPen("#ffb347", width=2))
        self.t = np.full(HISTORY_WINDOWS, np.nan)
        self.v = np.full(HISTORY_WINDOWS, np.nan)

    def clear_history(self) -> None:
        self.t[:] = np.nan
        self.v[:] = np.nan

    def add(self, t_s: float, rate: float) -> None:
        self.t = np.roll(self.t, -1)
        self.v = np.roll(self.v, -1)
        self.t[-1], self.v[-1] = t_s, rate
        ok = np.isfinite(self.t)
        self.curve.setData(self.t[ok], self.v[ok])


class NeuronTable(QtWidgets.QTableWidget):
    """The loaded model's spiking layers: neuron kind, tau, theta, rho, surrogate temperature."""

    COLUMNS = ("layer", "kind", "tau", "theta", "rho", "T")

    def __init__(self):
        super().__init__(0, len(self.COLUMNS))
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        font = self.font()
        font.setPointSizeF(8)
        self.setFont(font)
        self.setToolTip("neuron settings of every spiking layer of the loaded model (from its genotype); "
                        "tau: membrane decay, theta: threshold, rho: ALIF adaptation, T: surrogate "
                        "temperature")

    def set_layers(self, rows: list[tuple[str, object]]) -> None:
        self.setRowCount(len(rows))
        for i, (name, spec) in enumerate(rows):
            rho = f"{spec.rho:g}" if spec.kind == "alif" else "-"
            values = (short_layer(name), spec.kind, f"{spec.tau:g}", f"{spec.theta:g}", rho,
                      f"{spec.temperature:g}")
            for j, v in enumerate(values):
                item = QtWidgets.QTableWidgetItem(v)
                if j == 0:
                    item.setToolTip(name)
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignVCenter
                                      | (QtCore.Qt.AlignmentFlag.AlignLeft if j < 2
                                         else QtCore.Qt.AlignmentFlag.AlignRight))
                self.setItem(i, j, item)
        self.resizeRowsToContents()

"""The control column: source picker with forms generated from the source table, model picker,
playback, event-view settings and recording. Widgets only; the main window wires them to the session."""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets

from eventstereo.errors import InputError
from eventstereo.sources.registry import SOURCES, FieldSpec, field_specs, requirement

SPEEDS = (("as fast as possible", None), ("real time", 1.0), ("0.5x real time", 0.5), ("2x real time", 2.0))


class _PathEdit(QtWidgets.QWidget):
    """A line edit with a browse button (file or folder)."""

    def __init__(self, kind: str, placeholder: str = ""):
        super().__init__()
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.edit = QtWidgets.QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        button = QtWidgets.QToolButton(text="...")
        button.clicked.connect(self._browse)
        lay.addWidget(self.edit, 1)
        lay.addWidget(button)
        self.kind = kind

    def _browse(self) -> None:
        if self.kind == "dir":
            path = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a folder")
        elif self.kind == "new":
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Write to")
        else:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a file")
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        self.edit.setText(text)


class SourceForm(QtWidgets.QWidget):
    """One source kind's options, one row per config field (type, range, help from the table)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.specs = field_specs(SOURCES[kind].config)
        lay = QtWidgets.QFormLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.widgets: dict[str, QtWidgets.QWidget] = {}
        for spec in self.specs:
            w = self._widget(spec)
            tip = f"{spec.flag}: {spec.help}; {requirement(spec)}" + (" (optional)" if spec.optional else "")
            w.setToolTip(tip)
            label = QtWidgets.QLabel(spec.name.replace("_", " "))
            label.setToolTip(tip)
            lay.addRow(label, w)
            self.widgets[spec.name] = w

    @staticmethod
    def _widget(spec: FieldSpec) -> QtWidgets.QWidget:
        if spec.choices is not None:
            w = QtWidgets.QComboBox()
            if spec.optional:
                w.addItem("", None)
            for c in spec.choices:
                w.addItem(str(c), c)
            if spec.default is not None:
                w.setCurrentIndex(w.findData(spec.default))
            return w
        if spec.path is not None:
            return _PathEdit(spec.path, "required" if spec.required else "optional")
        if spec.default is not None and spec.type is int:
            w = QtWidgets.QSpinBox()
            w.setRange(int(spec.low if spec.low is not None else -2**31),
                       int(spec.high if spec.high is not None else 2**31 - 1))
            w.setValue(spec.default)
            return w
        if spec.default is not None and spec.type is float:
            w = QtWidgets.QDoubleSpinBox()
            w.setDecimals(1)
            w.setRange(spec.low if spec.low is not None else -1e9,
                       spec.high if spec.high is not None else 1e9)
            w.setValue(spec.default)
            return w
        w = QtWidgets.QLineEdit()
        w.setPlaceholderText("required" if spec.required else "optional")
        return w

    def values(self) -> dict[str, Any]:
        """The form's values (empty text: not given); InputError naming the flag on unreadable numbers."""
        out: dict[str, Any] = {}
        for spec in self.specs:
            w = self.widgets[spec.name]
            if isinstance(w, QtWidgets.QComboBox):
                v = w.currentData()
            elif isinstance(w, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
                v = w.value()
            else:
                text = w.text().strip()
                if not text:
                    continue
                try:
                    v = spec.type(text)
                except ValueError:
                    raise InputError(f"{spec.flag} must be {requirement(spec)}, got {text!r}") from None
            if v is not None:
                out[spec.name] = v
        return out

    def set_value(self, name: str, value: Any) -> None:
        w = self.widgets[name]
        if isinstance(w, QtWidgets.QComboBox):
            w.setCurrentIndex(max(0, w.findData(value)))
        elif isinstance(w, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
            w.setValue(value)
        else:
            w.setText("" if value is None else str(value))

    def config(self):
        """The validated config of the form's values (InputError naming the flag)."""
        return SOURCES[self.kind].config(**self.values())


class SourceBox(QtWidgets.QGroupBox):
    """The source picker: a kind and its generated form, and an Open button."""

    open_requested = QtCore.Signal(object)
    failed = QtCore.Signal(str)

    def __init__(self):
        super().__init__("Source")
        lay = QtWidgets.QVBoxLayout(self)
        self.kind = QtWidgets.QComboBox()
        self.stack = QtWidgets.QStackedWidget()
        self.forms: dict[str, SourceForm] = {}
        for name, entry in SOURCES.items():
            self.kind.addItem(entry.title, name)
            self.forms[name] = SourceForm(name)
            self.stack.addWidget(self.forms[name])
        self.kind.currentIndexChanged.connect(self._show_form)
        self._show_form(0)
        self.open_button = QtWidgets.QPushButton("Open source")
        self.open_button.clicked.connect(self._open)
        lay.addWidget(self.kind)
        lay.addWidget(self.stack)
        lay.addWidget(self.open_button)

    def _show_form(self, index: int) -> None:
        """Show one kind's form, sized to its own rows (not to the longest form)."""
        ignored, preferred = (QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        for i in range(self.stack.count()):
            policy = preferred if i == index else ignored
            self.stack.widget(i).setSizePolicy(policy, policy)
        self.stack.setCurrentIndex(index)
        self.stack.adjustSize()

    def select(self, config) -> None:
        """Show ``config`` in its form (what was opened from the command line)."""
        self.kind.setCurrentIndex(self.kind.findData(config.kind))
        form = self.forms[config.kind]
        for spec in form.specs:
            form.set_value(spec.name, getattr(config, spec.name))

    def _open(self) -> None:
        kind = self.kind.currentData()
        try:
            config = self.forms[kind].config()
        except InputError as e:
            self.failed.emit(str(e))
            return
        self.open_requested.emit(config)


class ModelBox(QtWidgets.QGroupBox):
    """The model picker: the bundled demo model, or a .safetensors file."""

    load_requested = QtCore.Signal(object)  # a path or None (bundled)

    def __init__(self):
        super().__init__("Model")
        lay = QtWidgets.QVBoxLayout(self)
        self.path = _PathEdit("file", "bundled demo model")
        self.path.setToolTip("a .safetensors model file; empty: the bundled demo model")
        self.info = QtWidgets.QLabel("-")
        self.info.setWordWrap(True)
        self.load_button = QtWidgets.QPushButton("Load model")
        self.load_button.clicked.connect(lambda: self.load_requested.emit(self.path.text().strip() or None))
        lay.addWidget(self.path)
        lay.addWidget(self.load_button)
        lay.addWidget(self.info)


class PlaybackBox(QtWidgets.QGroupBox):
    """Play / pause / step, seek (where the source can), playback speed."""

    def __init__(self):
        super().__init__("Playback")
        lay = QtWidgets.QGridLayout(self)
        self.play = QtWidgets.QPushButton("Pause")
        self.play.setCheckable(True)
        self.play.setChecked(True)
        self.step = QtWidgets.QPushButton("Step")
        self.step.setToolTip("pause and run one window")
        self.speed = QtWidgets.QComboBox()
        for label, value in SPEEDS:
            self.speed.addItem(label, value)
        self.seek_to = QtWidgets.QDoubleSpinBox()
        self.seek_to.setRange(0.0, 1e6)
        self.seek_to.setDecimals(2)
        self.seek_to.setSuffix(" s")
        self.seek = QtWidgets.QPushButton("Seek")
        self.seek.setToolTip("jump to this source time (spiking state is reset)")
        lay.addWidget(self.play, 0, 0)
        lay.addWidget(self.step, 0, 1)
        lay.addWidget(QtWidgets.QLabel("speed"), 1, 0)
        lay.addWidget(self.speed, 1, 1)
        lay.addWidget(self.seek_to, 2, 0)
        lay.addWidget(self.seek, 2, 1)

    def show_playing(self, playing: bool) -> None:
        self.play.blockSignals(True)
        self.play.setChecked(playing)
        self.play.setText("Pause" if playing else "Play")
        self.play.blockSignals(False)


class ViewBox(QtWidgets.QGroupBox):
    """How event views are drawn: ON/OFF counts or SBT, accumulated windows, SBT bins."""

    def __init__(self):
        super().__init__("Event views")
        lay = QtWidgets.QFormLayout(self)
        self.mode = QtWidgets.QComboBox()
        self.mode.addItem("ON / OFF", "onoff")
        self.mode.addItem("SBT (sum of bins)", "sbt")
        self.accumulate = QtWidgets.QSpinBox()
        self.accumulate.setRange(1, 20)
        self.accumulate.setSuffix(" window(s)")
        self.bins = QtWidgets.QSpinBox()
        self.bins.setRange(1, 20)
        self.bins.setValue(5)
        lay.addRow("colours", self.mode)
        lay.addRow("accumulate", self.accumulate)
        lay.addRow("SBT bins", self.bins)


class RecordBox(QtWidgets.QGroupBox):
    """Recording: the disparity video (.avi beside it) and the raw arrays (.npz or .h5)."""

    def __init__(self):
        super().__init__("Record")
        lay = QtWidgets.QVBoxLayout(self)
        self.path = QtWidgets.QLineEdit("recording.npz")
        self.path.setToolTip("arrays to .npz or .h5; the disparity video goes beside it as .avi")
        self.button = QtWidgets.QPushButton("Record")
        self.button.setCheckable(True)
        self.info = QtWidgets.QLabel("not recording")
        lay.addWidget(self.path)
        lay.addWidget(self.button)
        lay.addWidget(self.info)

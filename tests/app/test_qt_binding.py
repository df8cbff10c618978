"""The installed Qt binding must keep Python's reference counts: PySide6 6.12.0 on Python 3.11 drops a
reference to None on every call that returns nothing, so a running app aborts ("none_dealloc") after a
few hundred thousand Qt calls, about a minute of the GUI."""

from __future__ import annotations

import sys

import pytest

QtWidgets = pytest.importorskip("PySide6.QtWidgets")


def test_qt_calls_that_return_nothing_keep_the_reference_count_of_none(qapp):
    label = QtWidgets.QLabel("x")
    label.setText("y")  # warm up: the first calls may create cached objects
    before = sys.getrefcount(None)
    for i in range(2000):
        label.setText(str(i % 2))
        qapp.processEvents()
    assert sys.getrefcount(None) - before > -100, "the Qt binding leaks references to None"

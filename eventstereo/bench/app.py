"""`eventstereo bench app`: the GUI's cost to the model, its drawing rate and latency (see app/bench.py).

The benchmark drives the app, which ``eventstereo`` never imports statically; this entry only finds it
at run time, like `eventstereo run` does, and says so when the GUI is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def main(argv: list[str] | None = None) -> int:
    if any(importlib.util.find_spec(m) is None for m in ("app", "PySide6", "pyqtgraph")):
        print("error: bench app needs the app package with PySide6 and pyqtgraph "
              "(pip install 'eventstereo[gui]')", file=sys.stderr)
        return 2
    return importlib.import_module("app.bench").main(argv)

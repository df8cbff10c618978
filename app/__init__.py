"""The desktop GUI of eventstereo (PySide6 + pyqtgraph): live events, disparity, GT, error and the
per-layer firing rates of a StreamSession. ``main(argv)`` is `eventstereo app` (and `eventstereo run`
where a display exists). Qt loads only when ``main`` runs, so importing ``app`` stays cheap."""


def main(argv: list[str] | None = None) -> int:
    from app.main import main as run

    return run(argv)

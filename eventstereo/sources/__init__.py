"""Event sources behind one interface (see base.Source); `registry` opens them from CLI arguments."""

from eventstereo.sources.base import Source

__all__ = ["Source"]

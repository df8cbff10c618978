"""Runtime: the streaming loop (StreamSession) and the `stream` command."""

from eventstereo.runtime.session import SessionOptions, StreamSession, WindowResult

__all__ = ["SessionOptions", "StreamSession", "WindowResult"]

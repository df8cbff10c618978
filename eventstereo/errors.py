"""One exception family so callers (CLI, GUI) can report bad input without a traceback."""


class EventStereoError(Exception):
    """Base class of the errors eventstereo raises on bad input."""


class InputError(EventStereoError, ValueError):
    """Input data (events, files, settings) is malformed; the message names the source and the problem."""

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)

"""Events: the structured dtype, StereoWindow, and the SBT encoder."""

from eventstereo.events.sbt import SBTSettings, StreamingSBT, encode_sbt, encode_sbt_batch
from eventstereo.events.types import (
    EVENT_DTYPE,
    empty_events,
    from_tonic,
    from_xytp_array,
    make_events,
    polarity_sign,
    validate_events,
)
from eventstereo.events.window import StereoWindow

__all__ = [
    "EVENT_DTYPE", "SBTSettings", "StereoWindow", "StreamingSBT", "empty_events", "encode_sbt",
    "encode_sbt_batch", "from_tonic", "from_xytp_array", "make_events", "polarity_sign", "validate_events",
]

"""Training machinery shared by the stereo tools: window-sequence data, the loop, checkpoints."""

from eventstereo.training.checkpoint import load_checkpoint, restore_checkpoint, save_checkpoint
from eventstereo.training.data import ConcatStores, EncodedWindows, WindowSequences, contiguous_runs
from eventstereo.training.loop import TrainConfig, evaluate_sequences, train, train_sequence

__all__ = [
    "ConcatStores", "EncodedWindows", "TrainConfig", "WindowSequences", "contiguous_runs",
    "evaluate_sequences", "load_checkpoint", "restore_checkpoint", "save_checkpoint", "train",
    "train_sequence",
]

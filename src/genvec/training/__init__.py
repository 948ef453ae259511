"""Training: the loop (`loop.py`), its examples' tokens and batch plan (`examples.py`), checkpoints and resumption
(`checkpoints.py`), the session a run's steps share, the optimizer and schedule (`optim.py`). `genvec.train` is
`training.loop.train`; the examples it reads come from `genvec.pipeline` unless the caller gives them."""

from genvec.pipeline import TrainingExamples
from genvec.training.checkpoints import list_checkpoints
from genvec.training.loop import TrainResult, train

__all__ = ["TrainResult", "TrainingExamples", "list_checkpoints", "train"]

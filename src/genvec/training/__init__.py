"""Training: the loop (`loop.py`), its data and batch plan (`examples.py`), checkpoints and resumption
(`checkpoints.py`), the optimizer and schedule (`optim.py`). `genvec.train` is `training.loop.train`."""

from genvec.training.checkpoints import list_checkpoints
from genvec.training.examples import TrainingExamples
from genvec.training.loop import TrainResult, train

__all__ = ["TrainResult", "TrainingExamples", "list_checkpoints", "train"]

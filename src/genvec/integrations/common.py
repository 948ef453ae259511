"""What every adapter shares: a model given loaded or as a checkpoint to load."""

from pathlib import Path

from genvec.loading import load_model
from genvec.model import GenVecModel


def resolve_model(model: str | Path | GenVecModel, device: str = "auto") -> GenVecModel:
    """`model` itself when loaded, else the checkpoint it names, loaded on `device`."""
    if isinstance(model, GenVecModel):
        return model
    return load_model(model, device=device)

"""Checkpoints: genvec's own format (`native.py`) and, later, official LLM2Vec-Gen releases.

`load_model` recognises a checkpoint by its files and dispatches to the reader of that layout.
"""

from genvec.checkpoint.native import load_model

__all__ = ["load_model"]

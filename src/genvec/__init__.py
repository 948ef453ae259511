"""genvec: generative embeddings from frozen LLMs (LLM2Vec-Gen, arXiv 2603.10913).

A frozen decoder LLM gets a few trainable special tokens appended to its input; their final states, through two
small projections, become an embedding of the LLM's potential response to the input.

    >>> import genvec
    >>> model = genvec.load_model("path/to/checkpoint")
    >>> model.encode(["where do polar bears live?"], normalize=True)

Importing genvec has no side effects; optional dependencies load inside the functions that need them.
"""

__version__ = "0.1.0"

from genvec.checkpoint import load_model
from genvec.config import GenVecConfig
from genvec.data.responses import generate_responses
from genvec.errors import GenVecError
from genvec.model import GenVecModel
from genvec.targets import compute_targets
from genvec.train import train

__all__ = [
    "GenVecConfig",
    "GenVecError",
    "GenVecModel",
    "__version__",
    "compute_targets",
    "generate_responses",
    "load_model",
    "train",
]

"""genvec: generative embeddings from frozen LLMs (LLM2Vec-Gen, arXiv 2603.10913).

A frozen decoder LLM gets a few trainable special tokens appended to its input; their final states, through two
small projections, become an embedding of the LLM's potential response to the input.

    >>> import genvec
    >>> model = genvec.load_model("path/to/checkpoint")
    >>> model.encode(["where do polar bears live?"], normalize=True)

Importing genvec loads no heavy library: each public name is imported the first time it is used (PEP 562), so
`genvec --help` starts without torch. Optional dependencies load inside the functions that need them. Its one
effect: when torch is not loaded yet, it chooses torch's CPU thread setup where the environment leaves it unset
(`genvec.threads`: threads for the CPUs the process may use, a short spin; `GENVEC_CPU_THREADS=torch` opts out).
"""

import importlib
from typing import TYPE_CHECKING

from genvec import threads as _threads
from genvec.version import __version__

_threads.configure()

# Public name -> the module that defines it.
_EXPORTS = {
    "GenVecConfig": "genvec.config",
    "GenVecError": "genvec.errors",
    "GenVecModel": "genvec.model",
    "compute_targets": "genvec.targets",
    "generate_responses": "genvec.data.responses",
    "load_model": "genvec.loading",
    "to_sentence_transformer": "genvec.integrations.sentence_transformers",
    "train": "genvec.training",
}

__all__ = [
    "GenVecConfig",
    "GenVecError",
    "GenVecModel",
    "__version__",
    "compute_targets",
    "generate_responses",
    "load_model",
    "to_sentence_transformer",
    "train",
]

if TYPE_CHECKING:
    from genvec.config import GenVecConfig
    from genvec.data.responses import generate_responses
    from genvec.errors import GenVecError
    from genvec.integrations.sentence_transformers import to_sentence_transformer
    from genvec.loading import load_model
    from genvec.model import GenVecModel
    from genvec.targets import compute_targets
    from genvec.training import train


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genvec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

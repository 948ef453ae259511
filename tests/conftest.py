"""Shared fixtures: tiny random Qwen3 and Llama backbones with tokenizers built in code; offline, seeded, CPU.

Backbones are saved once per session to a temporary directory and loaded through `from_pretrained`, the same path a
hub model takes. Tests write only under pytest's temporary directories.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from transformers.utils import logging as transformers_logging

from genvec import GenVecModel
from genvec.testing import save_tiny_backbone

transformers_logging.disable_progress_bar()
transformers_logging.set_verbosity_error()
# The tiny test models gain nothing from intra-op threads, and on a shared, loaded CPU OpenMP threads that spin-wait
# for each other make every small matrix product hundreds of times slower.
torch.set_num_threads(1)

EMBEDDING_DIM = 16


@pytest.fixture(scope="session")
def backbone_dirs(tmp_path_factory):
    """Directories of tiny backbones by name: qwen3 (tied embeddings), llama (untied)."""
    root = tmp_path_factory.mktemp("backbones")
    return {
        "qwen3": save_tiny_backbone(root / "qwen3", "qwen3", tie_word_embeddings=True),
        "llama": save_tiny_backbone(root / "llama", "llama", tie_word_embeddings=False),
    }


@pytest.fixture(params=["qwen3", "llama"])
def architecture(request):
    return request.param


@pytest.fixture
def tiny_backbone_dir(backbone_dirs, architecture):
    return backbone_dirs[architecture]


@pytest.fixture
def tiny_model(tiny_backbone_dir):
    """A fresh untrained GenVecModel (N=4, K=2, D=16) in fp32 on the CPU, for each architecture."""
    torch.manual_seed(0)
    return _tiny_model(tiny_backbone_dir)


@pytest.fixture
def qwen3_model(backbone_dirs):
    """The Qwen3 tiny model alone, for tests that need only one architecture."""
    return _tiny_model(backbone_dirs["qwen3"])


@pytest.fixture(scope="module")
def served_model(backbone_dirs):
    """The Qwen3 tiny model, seeded, once per test module: the model the serving tests' servers and clients share."""
    torch.manual_seed(0)
    return _tiny_model(backbone_dirs["qwen3"])


@pytest.fixture(scope="module")
def plain_dir(backbone_dirs, tmp_path_factory):
    """A saved tiny model (D = EMBEDDING_DIM), neither calibrated nor truncatable: what the dimensions and precision
    tests derive their truncatable and calibrated checkpoints from."""
    torch.manual_seed(0)
    model = _tiny_model(backbone_dirs["qwen3"])
    directory = tmp_path_factory.mktemp("plain") / "model"
    model.save_pretrained(directory)
    return directory


def _tiny_model(directory) -> GenVecModel:
    return GenVecModel.from_backbone(
        str(directory), num_special_tokens=4, num_compression_tokens=2, embedding_dim=EMBEDDING_DIM, dtype="fp32",
        device="cpu",
    )


@pytest.fixture
def fast_compile(monkeypatch):
    """`nn.Module.compile` with the aot_eager backend: Dynamo traces and guards as with Inductor (graphs, graph
    breaks, recompilations, autograd through AOT) without generating C++ kernels, which takes a minute on a CPU."""
    import torch._dynamo

    original = torch.nn.Module.compile

    def compile_without_kernels(module, **options):
        return original(module, backend="aot_eager", **options)

    monkeypatch.setattr(torch.nn.Module, "compile", compile_without_kernels)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield torch._dynamo.utils.counters
    torch._dynamo.reset()

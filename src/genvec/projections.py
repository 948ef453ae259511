"""The two trainable projections of LLM2Vec-Gen (paper section 3.1), each one affine map, no nonlinearity.

- `ReconstructionProjection` R: H -> H. Maps the final states of the compression tokens to the compression states
  z, which the frozen LLM reads as input embeddings (the decoder prompt).
- `AlignmentProjection` A: H -> D. Maps compression states to the embedding space of the teacher.

The embedding is mean_k A(z_k). Both are kept in fp32 and seeded, so a new model is reproducible.
"""

import math

import torch
from torch import nn


class _SeededLinear(nn.Linear):
    """An `nn.Linear` in fp32 whose initial values come from a given generator (PyTorch's default distribution)."""

    def __init__(self, in_features: int, out_features: int, generator: torch.Generator | None = None) -> None:
        super().__init__(in_features, out_features, bias=True, dtype=torch.float32)
        if generator is not None:
            self._reset_with(generator)

    @torch.no_grad()
    def _reset_with(self, generator: torch.Generator) -> None:
        # PyTorch's default Linear init: kaiming-uniform weights (a = sqrt(5)) and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.bias, -bound, bound, generator=generator)


class ReconstructionProjection(_SeededLinear):
    """R: final states of the compression tokens (.., H) -> compression states (.., H), the decoder prompt."""

    def __init__(self, hidden_size: int, generator: torch.Generator | None = None) -> None:
        super().__init__(hidden_size, hidden_size, generator)


class AlignmentProjection(_SeededLinear):
    """A: compression states (.., H) -> embedding space (.., D), aligned with the teacher."""

    def __init__(self, hidden_size: int, embedding_dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__(hidden_size, embedding_dim, generator)

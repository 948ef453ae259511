"""The LLM2Vec-Gen training objective as pure functions (paper section 3.3-3.4).

- `reconstruction_loss`: token cross-entropy of the frozen LLM's next-token predictions on the response tokens.
  It takes only the hidden states at labelled positions and applies the LM head to them in chunks, so the full
  (batch x length x vocabulary) logits tensor never exists (DESIGN decision 4). With more than one chunk each
  chunk is recomputed in the backward pass instead of storing its logits.
- `alignment_loss`: mean squared error between embeddings and teacher embeddings (mean over batch and dims).
- `combined_loss`: the weighted sum.

Shapes: M labelled tokens, H hidden size, V vocabulary, B batch, D embedding size.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def reconstruction_loss(
    states: torch.Tensor,
    labels: torch.Tensor,
    head_weight: torch.Tensor,
    head_bias: torch.Tensor | None = None,
    *,
    softcap: float | None = None,
    chunk_size: int = 1024,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Cross-entropy of the LM head's predictions at labelled positions, averaged (or summed) over tokens.

    Args:
        states: (M, H) final hidden states of the positions that predict a response token.
        labels: (M,) the response token each position must predict.
        head_weight: (V, H) LM head weight; head_bias: (V,) or None.
        softcap: final-logit soft-capping of the backbone (Gemma-2 style), if it has one.
        chunk_size: positions scored at once; bounds the memory of the (chunk, V) logits.
        reduction: "mean" over the M tokens, or "sum" for callers that normalise over a larger batch.

    Returns:
        A scalar fp32 tensor.
    """
    assert states.shape[0] == labels.shape[0], f"{states.shape[0]} states for {labels.shape[0]} labels"
    count = labels.shape[0]
    divisor = count if reduction == "mean" else 1
    if count == 0:
        return states.new_zeros((), dtype=torch.float32)
    if count <= chunk_size:
        return _chunk_cross_entropy_sum(states, labels, head_weight, head_bias, softcap) / divisor
    total = states.new_zeros((), dtype=torch.float32)
    for start in range(0, count, chunk_size):
        chunk = slice(start, start + chunk_size)
        total = total + checkpoint(
            _chunk_cross_entropy_sum,
            states[chunk],
            labels[chunk],
            head_weight,
            head_bias,
            softcap,
            use_reentrant=False,
        )
    return total / divisor


def alignment_loss(
    embeddings: torch.Tensor, teacher_embeddings: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
) -> torch.Tensor:
    """Squared error between (B, D) embeddings and (B, D) teacher embeddings, in fp32.

    "mean" averages over batch and dimensions (the paper's MSE); "sum" lets callers normalise over a larger batch.
    """
    assert embeddings.shape == teacher_embeddings.shape, f"{embeddings.shape} vs {teacher_embeddings.shape}"
    return F.mse_loss(embeddings.float(), teacher_embeddings.float(), reduction=reduction)


def combined_loss(
    reconstruction: torch.Tensor, alignment: torch.Tensor, reconstruction_weight: float, alignment_weight: float
) -> torch.Tensor:
    """`reconstruction_weight * reconstruction + alignment_weight * alignment`; a zero weight drops its term."""
    total = alignment.new_zeros(())
    if reconstruction_weight:
        total = total + reconstruction_weight * reconstruction
    if alignment_weight:
        total = total + alignment_weight * alignment
    return total


def _chunk_cross_entropy_sum(
    states: torch.Tensor,
    labels: torch.Tensor,
    head_weight: torch.Tensor,
    head_bias: torch.Tensor | None,
    softcap: float | None,
) -> torch.Tensor:
    logits = F.linear(states, head_weight, head_bias).float()  # (chunk, V)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, labels, reduction="sum")

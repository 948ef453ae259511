"""The LLM2Vec-Gen training objective as pure functions (paper section 3.3-3.4).

- `reconstruction_loss`: token cross-entropy of the frozen LLM's next-token predictions on the response tokens.
  It takes only the hidden states at labelled positions and applies the LM head to them in chunks, so the full
  (batch x length x vocabulary) logits tensor never exists (design decision 4, docs/design.md). Each chunk's
  gradient is computed as soon as its logits are, in the forward pass, and the logits are dropped: one chunk of
  logits is the most that ever exists, and nothing is recomputed in the backward pass.
- `alignment_loss`: mean squared error between embeddings and teacher embeddings (mean over batch and dims).
- `combined_loss`: the weighted sum.

Shapes: M labelled tokens, H hidden size, V vocabulary, B batch, D embedding size.
"""

from typing import Literal

import torch
import torch.nn.functional as F


def reconstruction_loss(
    states: torch.Tensor,
    labels: torch.Tensor,
    head_weight: torch.Tensor,
    head_bias: torch.Tensor | None = None,
    *,
    softcap: float | None = None,
    chunk_size: int = 256,
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
    if labels.shape[0] == 0:
        return states.new_zeros((), dtype=torch.float32)
    # Under no_grad autograd still reports which inputs require a gradient; the flag skips their computation.
    with_grads = torch.is_grad_enabled()
    total = _ChunkedCrossEntropy.apply(states, labels, head_weight, head_bias, softcap, chunk_size, with_grads)
    return total / labels.shape[0] if reduction == "mean" else total


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


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy whose gradients are computed chunk by chunk in the forward pass.

    For logits l = W s + b, d(sum of CE)/dl = softmax(l) - onehot(label), so each chunk's gradients follow from its
    logits at once and the (chunk, V) logits can be freed: the backward pass only scales stored gradients. The
    matrix products are the same as plain autograd's (one forward, one per input needing a gradient).
    """

    @staticmethod
    def forward(ctx, states, labels, head_weight, head_bias, softcap, chunk_size, with_grads):
        needs_states, _, needs_weight, needs_bias = (with_grads and needs for needs in ctx.needs_input_grad[:4])
        grad_states = torch.empty_like(states) if needs_states else None
        grad_weight = torch.zeros_like(head_weight, dtype=torch.float32) if needs_weight else None
        grad_bias = torch.zeros_like(head_bias, dtype=torch.float32) if needs_bias else None
        total = states.new_zeros((), dtype=torch.float32)
        for start in range(0, states.shape[0], chunk_size):
            chunk = slice(start, start + chunk_size)
            logits = F.linear(states[chunk], head_weight, head_bias).float()  # (chunk, V)
            if softcap is not None:
                capped = torch.tanh(logits / softcap)
                logits = capped * softcap
            log_normaliser = torch.logsumexp(logits, 1)  # (chunk,)
            rows = torch.arange(logits.shape[0], device=logits.device)
            total += (log_normaliser - logits[rows, labels[chunk]]).sum()
            if not (needs_states or needs_weight or needs_bias):
                continue
            grad_logits = logits.sub_(log_normaliser[:, None]).exp_()  # softmax, in place of the logits
            grad_logits[rows, labels[chunk]] -= 1
            if softcap is not None:
                grad_logits.mul_(1 - capped.square_())
            if needs_states:
                grad_states[chunk] = grad_logits.to(head_weight.dtype) @ head_weight
            if needs_weight:
                grad_weight += grad_logits.T @ states[chunk].float()
            if needs_bias:
                grad_bias += grad_logits.sum(0)
        # Intermediate results, not inputs or outputs: kept on ctx, as autograd's documentation allows.
        ctx.grads = (grad_states, grad_weight, grad_bias)
        ctx.dtypes = (states.dtype, head_weight.dtype, None if head_bias is None else head_bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_states, grad_weight, grad_bias = (
            None if grad is None else (grad * grad_total).to(dtype) for grad, dtype in zip(ctx.grads, ctx.dtypes)
        )
        ctx.grads = None
        return grad_states, None, grad_weight, grad_bias, None, None, None

"""Pooling token states into one vector per text: the mean over the text's tokens, or its first token's state.

Shared by the Hugging Face encoder teachers (`teacher.py`) and the mean-pooled baseline (`evaluate/baselines.py`).
What it does not do: tokenise, or run a model.
"""

import torch


def pool_states(states: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(B, T, H) token states -> (B, H) fp32: mean over non-pad tokens, or the first token's state."""
    states = states.float()
    if pooling == "cls":
        return states[:, 0]
    weights = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)

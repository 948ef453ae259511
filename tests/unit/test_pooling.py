"""Pooling token states into one vector per text."""

import torch

from genvec.pooling import pool_states


def test_mean_pooling_skips_pads_and_cls_takes_the_first_token():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=torch.bfloat16)  # (1, 3, 2), last a pad
    mask = torch.tensor([[1, 1, 0]])
    mean = pool_states(states, mask)
    assert mean.dtype == torch.float32 and mean.tolist() == [[2.0, 3.0]]
    assert pool_states(states, mask, "cls").tolist() == [[1.0, 2.0]]
    assert pool_states(states, torch.zeros(1, 3)).tolist() == [[0.0, 0.0]]  # no token: zeros, not a division by 0

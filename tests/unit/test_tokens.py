"""SpecialTokens and the projections: seeded initialisation, fp32 storage, casting where used."""

import torch

from genvec.projections import AlignmentProjection, ReconstructionProjection
from genvec.tokens import SpecialTokens


def test_special_tokens_look_like_vocabulary_embeddings_and_differ():
    torch.manual_seed(0)
    embeddings = torch.nn.Embedding(500, 32)
    tokens = SpecialTokens(6, 32)
    tokens.reset_from_embeddings(embeddings, 500, torch.Generator().manual_seed(3))
    rows = tokens.weight.detach()
    assert rows.dtype == torch.float32 and rows.shape == (6, 32)
    assert abs(rows.std().item() - embeddings.weight.std().item()) < 0.3
    assert torch.cdist(rows, rows).fill_diagonal_(1).min() > 0.1
    again = SpecialTokens(6, 32)
    again.reset_from_embeddings(embeddings, 500, torch.Generator().manual_seed(3))
    assert torch.equal(again.weight, tokens.weight)


def test_special_tokens_cast_to_the_backbone_dtype_with_gradients():
    tokens = SpecialTokens(3, 8)
    batch = tokens(4, torch.bfloat16)
    assert batch.shape == (4, 3, 8) and batch.dtype == torch.bfloat16
    batch.float().sum().backward()
    assert torch.equal(tokens.weight.grad, torch.full((3, 8), 4.0))


def test_projections_are_seeded_fp32_affine_maps():
    first = ReconstructionProjection(16, torch.Generator().manual_seed(1))
    second = ReconstructionProjection(16, torch.Generator().manual_seed(1))
    assert torch.equal(first.weight, second.weight) and first.weight.dtype == torch.float32
    alignment = AlignmentProjection(16, 4, torch.Generator().manual_seed(2))
    x, y = torch.randn(2, 16), torch.randn(2, 16)
    # Affine: the map of a mean is the mean of the maps.
    assert torch.allclose(alignment((x + y) / 2), (alignment(x) + alignment(y)) / 2, atol=1e-6)
    assert alignment(x).shape == (2, 4)

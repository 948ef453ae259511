"""Pure loss functions: chunked cross-entropy equals the plain one, alignment MSE, weighting."""

import torch
import torch.nn.functional as F

from genvec.losses import alignment_loss, combined_loss, reconstruction_loss


def test_chunked_cross_entropy_equals_full_logits_and_gradients():
    torch.manual_seed(0)
    states = torch.randn(37, 8, requires_grad=True)
    weight, bias = torch.randn(50, 8), torch.randn(50)
    labels = torch.randint(0, 50, (37,))
    reference = F.cross_entropy(states @ weight.T + bias, labels)
    (reference_grad,) = torch.autograd.grad(reference, states)
    for chunk_size in (5, 37, 1000):
        loss = reconstruction_loss(states, labels, weight, bias, chunk_size=chunk_size)
        (grad,) = torch.autograd.grad(loss, states)
        assert torch.allclose(loss, reference, atol=1e-6)
        assert torch.allclose(grad, reference_grad, atol=1e-6)


def test_softcap_matches_its_definition():
    states, weight, labels = torch.randn(4, 8), torch.randn(20, 8) * 10, torch.randint(0, 20, (4,))
    capped = torch.tanh((states @ weight.T) / 30.0) * 30.0
    assert torch.allclose(reconstruction_loss(states, labels, weight, softcap=30.0), F.cross_entropy(capped, labels))


def test_alignment_loss_is_mean_squared_error():
    student, teacher = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.allclose(alignment_loss(student, teacher), ((student - teacher) ** 2).mean())
    assert alignment_loss(teacher, teacher).item() == 0.0


def test_combined_loss_weights_and_drops_terms():
    reconstruction, alignment = torch.tensor(2.0), torch.tensor(3.0)
    assert combined_loss(reconstruction, alignment, 1.0, 1.0).item() == 5.0
    assert combined_loss(reconstruction, alignment, 0.5, 2.0).item() == 7.0
    assert combined_loss(torch.tensor(float("nan")), alignment, 0.0, 1.0).item() == 3.0

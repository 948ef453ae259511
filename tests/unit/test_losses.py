"""Pure loss functions: chunked cross-entropy equals the plain one (values and gradients), alignment MSE, weighting."""

import pytest
import torch
import torch.nn.functional as F

from genvec.losses import alignment_loss, combined_loss, reconstruction_loss


def _plain_cross_entropy(states, labels, weight, bias=None, softcap=None):
    logits = F.linear(states, weight, bias).float()
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, labels)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_chunked_cross_entropy_equals_full_logits_and_gradients(softcap):
    torch.manual_seed(0)
    states = torch.randn(37, 8, requires_grad=True)
    weight, bias = torch.randn(50, 8, requires_grad=True), torch.randn(50, requires_grad=True)
    labels = torch.randint(0, 50, (37,))
    reference = _plain_cross_entropy(states, labels, weight, bias, softcap)
    reference_grads = torch.autograd.grad(reference * 2.5, (states, weight, bias))
    for chunk_size in (5, 37, 1000):
        loss = reconstruction_loss(states, labels, weight, bias, softcap=softcap, chunk_size=chunk_size)
        grads = torch.autograd.grad(loss * 2.5, (states, weight, bias))  # the upstream gradient scales them
        assert torch.allclose(loss, reference, atol=1e-6)
        for grad, reference_grad in zip(grads, reference_grads):
            assert torch.allclose(grad, reference_grad, atol=1e-5)
    summed = reconstruction_loss(states, labels, weight, bias, softcap=softcap, chunk_size=5, reduction="sum")
    assert torch.allclose(summed, reference * 37, atol=1e-4)


def test_chunked_cross_entropy_gradient_only_where_asked():
    states, weight = torch.randn(9, 4, requires_grad=True), torch.randn(11, 4)  # a frozen head, as in genvec
    labels = torch.randint(0, 11, (9,))
    loss = reconstruction_loss(states, labels, weight, chunk_size=4)
    loss.backward()
    assert states.grad is not None and weight.grad is None
    with torch.no_grad():
        assert torch.allclose(reconstruction_loss(states, labels, weight, chunk_size=4), loss)


def test_chunked_cross_entropy_in_bf16_follows_autograd():
    torch.manual_seed(1)
    states = torch.randn(40, 16, dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(30, 16, dtype=torch.bfloat16)
    labels = torch.randint(0, 30, (40,))
    (reference_grad,) = torch.autograd.grad(_plain_cross_entropy(states, labels, weight), states)
    (grad,) = torch.autograd.grad(reconstruction_loss(states, labels, weight, chunk_size=8), states)
    assert grad.dtype == torch.bfloat16
    assert torch.allclose(grad.float(), reference_grad.float(), atol=1e-3)


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

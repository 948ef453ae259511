"""GenVecModel: shapes, batch independence, frozen backbone, the loss terms, and training on fixed examples."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genvec.errors import InputError

TEXTS = [
    "Where do polar bears live?",
    "What is the capital city of the state by the river, and how many people live there after the war?",
    "Train a vector model.",
]


def test_compress_and_encode_shapes_and_dtypes(tiny_model):
    states = tiny_model.compress(TEXTS)
    assert states.shape == (3, 2, 64) and states.dtype == torch.float32
    embeddings = tiny_model.encode(TEXTS)
    assert isinstance(embeddings, np.ndarray)
    assert embeddings.shape == (3, 16) and embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all()


def test_encode_equals_projections_of_compress(tiny_model):
    # e = mean_k A(z_k), computed here the literal way.
    states = tiny_model.compress(TEXTS)
    literal = tiny_model.alignment(states).mean(1)
    np.testing.assert_allclose(tiny_model.encode(TEXTS), literal.detach().numpy(), atol=1e-6)


def test_embedding_does_not_depend_on_batch(tiny_model):
    alone = tiny_model.encode([TEXTS[0]])
    among_longer = tiny_model.encode(TEXTS + ["x " * 60], batch_size=8)
    assert np.abs(alone[0] - among_longer[0]).max() < 1e-5
    batched_small = tiny_model.encode(TEXTS, batch_size=1)
    assert np.abs(batched_small - among_longer[:3]).max() < 1e-5


def test_encode_restores_order_and_normalizes(tiny_model):
    forward = tiny_model.encode(TEXTS, batch_size=2)
    backward = tiny_model.encode(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    normalized = tiny_model.encode(TEXTS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(normalized, forward / np.linalg.norm(forward, axis=1, keepdims=True), atol=1e-5)


def test_instruction_is_joined_with_one_space(tiny_model):
    with_instruction = tiny_model.encode(["  bears  "], instruction=" Answer this: ")
    literal = tiny_model.encode(["Answer this: bears"])
    np.testing.assert_allclose(with_instruction, literal, atol=1e-6)
    assert np.abs(with_instruction - tiny_model.encode(["bears"])).max() > 1e-4


def test_truncation_cuts_the_text_never_the_special_tokens(tiny_model):
    long_text = " ".join(["polar bear arctic ice"] * 50)
    with pytest.warns(UserWarning, match="1 of 1 texts were longer than the model reads and were cut"):
        states = tiny_model.compress([long_text], max_length=12)
    # The special tokens are still last: equal to compressing the text already cut to 12 - 4 = 8 tokens.
    ids = tiny_model.tokenizer(long_text, add_special_tokens=True)["input_ids"][:8]
    cut_text = tiny_model.tokenizer.decode(ids, skip_special_tokens=True)
    assert torch.allclose(states, tiny_model.compress([cut_text], max_length=512), atol=1e-5)


def test_cached_query_pass_equals_single_pass_with_equal_gradients(qwen3_model):
    model = qwen3_model
    queries, _ = model.tokenize_batch(TEXTS, ["r"] * 3)
    single = model.special_states(queries)
    (grad_single,) = torch.autograd.grad(single.square().sum(), model.special_tokens.weight)
    cached = model.special_states(queries, cache_query=True)
    (grad_cached,) = torch.autograd.grad(cached.square().sum(), model.special_tokens.weight)
    assert torch.allclose(single, cached, atol=1e-5)
    assert torch.allclose(grad_single, grad_cached, atol=1e-4, rtol=1e-4)


def test_reconstruction_loss_equals_full_vocabulary_cross_entropy(tiny_model):
    model = tiny_model
    queries, responses = model.tokenize_batch(TEXTS, ["The answer is here.", "No.", "Polar bears live on ice."])
    states = model.compression_states(model.special_states(queries))  # (B, K, H)
    ours = model.reconstruction_loss(states, responses)
    # Reference: the backbone's own loss from full logits, labels -100 on the prompt and the pads.
    embeddings = model.backbone.get_input_embeddings()(responses.input_ids)
    inputs = torch.cat([states, embeddings], 1)
    mask = torch.cat([torch.ones(3, 2, dtype=torch.long), responses.attention_mask], 1)
    response_labels = responses.input_ids.masked_fill(responses.attention_mask == 0, -100)
    labels = torch.cat([torch.full((3, 2), -100), response_labels], 1)
    reference = model.backbone(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss
    assert torch.allclose(ours, reference, atol=1e-5)
    # Chunking the LM head (with recomputation in backward) changes nothing.
    chunked = dataclasses.replace(model.config.loss, logits_chunk_size=3)
    model.config = dataclasses.replace(model.config, loss=chunked)
    assert torch.allclose(model.reconstruction_loss(states, responses), reference, atol=1e-5)


def test_responses_end_with_the_tokenizer_eos(tiny_model):
    _, responses = tiny_model.tokenize_batch(["q", "q"], ["a long response here", "short"])
    lengths = responses.attention_mask.sum(1)
    last = responses.input_ids[torch.arange(2), lengths - 1]
    assert (last == tiny_model.tokenizer.eos_token_id).all()
    bos = tiny_model.tokenizer.bos_token_id
    assert bos is None or (responses.input_ids[:, 0] != bos).all()


def test_alignment_loss_is_zero_when_embedding_equals_target(tiny_model):
    queries, responses = TEXTS, ["a", "b", "c"]
    with torch.no_grad():
        target = tiny_model.embed(tiny_model.compression_states(tiny_model.special_states(
            tiny_model.tokenize_batch(queries, responses)[0])))
    output = tiny_model.loss(queries, responses, target)
    assert output.alignment.item() < 1e-10
    assert torch.isclose(output.total, output.reconstruction + output.alignment)


def test_optimizer_steps_change_only_trainables(tiny_model):
    model = tiny_model
    backbone_before = {name: p.clone() for name, p in model.backbone.state_dict().items()}
    trainable_before = {name: p.clone() for name, p in model.trainable_state_dict().items()}
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    targets = torch.randn(3, 16)
    for _ in range(3):
        optimizer.zero_grad()
        model.loss(TEXTS, ["x y", "z", "w v u"], targets).total.backward()
        optimizer.step()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert not model.backbone.training
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, backbone_before[name]), name
    for name, tensor in model.trainable_state_dict().items():
        assert not torch.equal(tensor, trainable_before[name]), name
    model.train()
    assert not model.backbone.training


def test_activation_checkpointing_gives_same_loss_and_gradients(qwen3_model, monkeypatch):
    model = qwen3_model
    targets = torch.randn(3, 16)
    checkpointed_calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting_checkpoint(function, *args, **kwargs):
        checkpointed_calls.append(function)
        return original(function, *args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting_checkpoint)

    def loss_and_grads():
        for p in model.trainable_parameters():
            p.grad = None
        output = model.loss(TEXTS, ["x y", "z", "w v u"], targets)
        output.total.backward()
        return output.total.detach(), [p.grad.clone() for p in model.trainable_parameters()]

    plain_loss, plain_grads = loss_and_grads()
    assert not checkpointed_calls
    model.activation_checkpointing = True
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    # Each decoder layer of the reconstruction pass ran under torch's checkpoint (the only pass without a cache).
    assert len(checkpointed_calls) == model.backbone.config.num_hidden_layers
    assert torch.allclose(plain_loss, checkpointed_loss, atol=1e-6)
    for plain, checkpointed in zip(plain_grads, checkpointed_grads):
        assert torch.allclose(plain, checkpointed, atol=1e-5)
    assert not any(layer.training for layer in model.backbone.modules())


def test_training_on_fixed_examples_cuts_the_losses(tiny_model):
    torch.manual_seed(1)
    queries = [f"question number {i} about the polar bear and the river" for i in range(8)]
    responses = [f"the answer {i} is that they live on the ice of the arctic." for i in range(8)]
    targets = F.normalize(torch.randn(8, 16), dim=-1)
    optimizer = torch.optim.AdamW(tiny_model.trainable_parameters(), lr=1e-2)
    history = []
    for _ in range(150):
        optimizer.zero_grad()
        output = tiny_model.loss(queries, responses, targets)
        output.total.backward()
        optimizer.step()
        history.append([t.item() for t in output])
    first, last = history[0], history[-1]
    print(f"total {first[0]:.3f} -> {last[0]:.3f}, recon {first[1]:.3f} -> {last[1]:.3f}, "
          f"align {first[2]:.4f} -> {last[2]:.5f}")
    assert last[2] <= 0.1 * first[2]
    assert last[0] <= 0.85 * first[0]


@pytest.mark.parametrize(
    "texts, message",
    [([], "got 0 texts"), (["ok", 3], r"texts\[1\] is int"), ("", None), (None, "must be a list of strings")],
)
def test_bad_input_gets_clear_errors(qwen3_model, texts, message):
    if message is None:
        assert qwen3_model.encode(texts).shape == (1, 16)  # a single (even empty) string is a list of one
        return
    with pytest.raises(InputError, match=message):
        qwen3_model.encode(texts)


def test_max_length_too_small_is_refused(qwen3_model):
    with pytest.raises(InputError, match="cannot hold one text token plus the 4 special tokens"):
        qwen3_model.encode(["hello"], max_length=4)
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        qwen3_model.encode(["hello"], batch_size=0)


def test_loss_checks_its_inputs(qwen3_model):
    with pytest.raises(InputError, match="got 2 queries but 1 responses"):
        qwen3_model.loss(["a", "b"], ["c"], torch.zeros(2, 16))
    with pytest.raises(InputError, match=r"expected \(2, 16\)"):
        qwen3_model.loss(["a", "b"], ["c", "d"], torch.zeros(2, 8))


def test_fsdp_auto_wrap_finds_the_decoder_layer_class(tiny_model):
    # Accelerate's transformer-based FSDP wrap takes the class names from the prepared model, here GenVecModel.
    from accelerate.utils.dataclasses import get_module_class_from_name

    classes = [get_module_class_from_name(tiny_model, name) for name in tiny_model._no_split_modules]
    assert classes and None not in classes
    assert all(isinstance(layer, tuple(classes)) for layer in tiny_model.backbone.base_model.layers)


def test_bad_arguments_of_encode_and_compress_are_refused_with_their_reason(qwen3_model):
    with pytest.raises(InputError, match="batch_size must be a positive integer, got True"):
        qwen3_model.encode(["a"], batch_size=True)
    with pytest.raises(InputError, match="normalize must be True or False, got 'no'"):
        qwen3_model.encode(["a"], normalize="no")
    with pytest.raises(InputError, match="max_length must be a positive integer, got 5.0"):
        qwen3_model.encode(["a"], max_length=5.0)
    with pytest.raises(InputError, match="instruction must be a string or None, got int"):
        qwen3_model.encode(["a"], instruction=123)
    with pytest.raises(InputError, match=r"texts\[0\] .* is not valid Unicode text"):
        qwen3_model.encode(["bad \ud800 surrogate"])


def test_compress_in_batches_equals_one_batch(qwen3_model):
    texts = [f"text number {i} " * (i % 5 + 1) for i in range(7)]
    whole = qwen3_model.compress(texts, batch_size=7)
    assert torch.allclose(qwen3_model.compress(texts, batch_size=2), whole, atol=1e-5)
    assert whole.shape == (7, qwen3_model.num_compression_tokens, qwen3_model.hidden_size)


def test_loss_refuses_teacher_embeddings_that_are_not_numbers(qwen3_model):
    with pytest.raises(InputError, match=r"teacher_embeddings must be a \(B, D\) array of numbers"):
        qwen3_model.loss(["q"], ["r"], [["a"] * 16])


def test_a_shared_instruction_prefix_is_computed_once_and_changes_no_embedding(tiny_model, monkeypatch):
    import genvec.inference as inference
    import genvec.model as model_module

    texts = [f"text {i} about rivers and ice " * (i % 4) for i in range(11)]  # "" among them
    instruction = "Given a question, retrieve the passages that answer the question:"
    calls = []
    original = model_module.GenVecModel.special_states

    def counted(self, batch, *, prefix=None, cache_query=False):
        calls.append((prefix.length if prefix is not None else 0, batch.input_ids.shape[0]))
        return original(self, batch, prefix=prefix, cache_query=cache_query)

    monkeypatch.setattr(model_module.GenVecModel, "special_states", counted)
    fast = tiny_model.encode(texts, instruction=instruction, batch_size=4)
    assert len(calls) == 3 and all(length >= 10 for length, _ in calls)  # 11 texts in batches of 4, one prefix
    monkeypatch.setattr(inference, "MIN_SHARED_PREFIX", 10**9)  # the plain path
    plain = tiny_model.encode(texts, instruction=instruction, batch_size=4)
    assert len(calls) == 6 and all(length == 0 for length, _ in calls[3:])
    assert np.abs(fast - plain).max() < 1e-5
    one_batch = tiny_model.encode(texts, instruction=instruction, batch_size=11)
    assert np.abs(one_batch - plain).max() < 1e-5

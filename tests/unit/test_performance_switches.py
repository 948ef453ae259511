"""Performance switches of GenVecModel: bf16 trainables (`tokens.trainable_dtype`) and compiled decoder layers
(`train.compile`). Each must train as the default does; bf16 must keep the checkpoint format; compiling must not
change the losses."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import genvec
from genvec import GenVecConfig, GenVecModel
from genvec.checkpoint.native import WEIGHTS_FILE
from genvec.config import ModelConfig, TokensConfig

QUERIES = ["Where do polar bears live?", "a much longer text about the river and the city and the world", "why?"]
RESPONSES = ["On the arctic ice.", "the river runs through the city", "because"]


def _model(backbone_dir, trainable_dtype="fp32"):
    config = GenVecConfig(
        model=ModelConfig(backbone=str(backbone_dir), embedding_dim=16, dtype="fp32", device="cpu"),
        tokens=TokensConfig(num_special_tokens=4, num_compression_tokens=2, trainable_dtype=trainable_dtype),
    )
    return GenVecModel.from_config(config)


def _loss_and_grads(model, targets):
    for parameter in model.trainable_parameters():
        parameter.grad = None
    count = targets.shape[0]
    output = model.loss(QUERIES[:count], RESPONSES[:count], targets)
    output.total.backward()
    return output, [parameter.grad.clone() for parameter in model.trainable_parameters()]


def test_trainables_are_fp32_by_default(backbone_dirs):
    model = _model(backbone_dirs["qwen3"])
    assert model.trainable_dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.trainable_parameters())


def test_bf16_trainables_start_from_the_rounded_fp32_init_and_compute_in_bf16(backbone_dirs):
    fp32, bf16 = _model(backbone_dirs["qwen3"]), _model(backbone_dirs["qwen3"], "bf16")
    assert bf16.trainable_dtype == torch.bfloat16
    for name, tensor in bf16.trainable_state_dict().items():
        assert torch.equal(tensor, fp32.trainable_state_dict()[name].bfloat16()), name
    with torch.no_grad():
        states = bf16.compression_states(bf16.special_states(bf16.tokenize_batch(QUERIES, RESPONSES)[0]))
    assert states.dtype == torch.bfloat16 and bf16.embed(states).dtype == torch.bfloat16
    assert bf16.compress(QUERIES).dtype == torch.float32  # the public outputs keep their dtypes
    assert bf16.encode(QUERIES).dtype == np.float32
    # bf16 rounding (8 bits of mantissa) of the trainables and projections only: the embeddings stay close.
    assert np.allclose(bf16.encode(QUERIES), fp32.encode(QUERIES), atol=0.05)


def test_bf16_trainables_train_with_fp32_losses(backbone_dirs):
    model = _model(backbone_dirs["qwen3"], "bf16")
    targets = torch.randn(3, 16)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    history = []
    for _ in range(20):
        optimizer.zero_grad()
        output = model.loss(QUERIES, RESPONSES, targets)
        assert all(term.dtype == torch.float32 for term in output)
        output.total.backward()
        optimizer.step()
        history.append(output.total.item())
    assert all(p.grad.dtype == torch.bfloat16 for p in model.trainable_parameters())
    assert history[-1] < 0.9 * history[0]


def test_bf16_trainables_save_fp32_tensors_and_load_bit_exact(backbone_dirs, tmp_path):
    model = _model(backbone_dirs["qwen3"], "bf16")
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    model.loss(QUERIES, RESPONSES, torch.randn(3, 16)).total.backward()
    optimizer.step()
    model.save_pretrained(tmp_path / "ckpt")
    stored = load_file(str(tmp_path / "ckpt" / WEIGHTS_FILE))
    assert all(tensor.dtype == torch.float32 for tensor in stored.values())
    loaded = genvec.load_model(tmp_path / "ckpt", device="cpu")
    assert loaded.trainable_dtype == torch.bfloat16
    for name, tensor in model.trainable_state_dict().items():
        assert torch.equal(loaded.trainable_state_dict()[name], tensor), name
    assert np.array_equal(loaded.encode(QUERIES), model.encode(QUERIES))


@pytest.mark.parametrize("checkpointing", [False, True])
def test_compiled_layers_give_the_same_losses_with_one_graph(backbone_dirs, fast_compile, checkpointing):
    plain, compiled = _model(backbone_dirs["qwen3"]), _model(backbone_dirs["qwen3"])
    compiled.compile_layers()
    for model in (plain, compiled):
        model.activation_checkpointing = checkpointing
    for batch_size in (3, 2, 3):  # other shapes must not compile again (dynamic shapes)
        targets = torch.randn(batch_size, 16)
        plain_output, plain_grads = _loss_and_grads(plain, targets)
        compiled_output, compiled_grads = _loss_and_grads(compiled, targets)
        assert torch.allclose(plain_output.total, compiled_output.total, atol=1e-5)
        for expected, actual in zip(plain_grads, compiled_grads):
            assert torch.allclose(expected, actual, atol=1e-5)
    assert np.allclose(plain.encode(QUERIES), compiled.encode(QUERIES), atol=1e-5)
    # Both layers share one graph for the reconstruction pass (plus one for encode's inference mode); the query
    # pass with its KV cache ran eagerly, or each layer would have compiled a graph of its own.
    assert fast_compile["stats"]["unique_graphs"] <= 2
    assert not fast_compile["graph_break"]
    graphs = fast_compile["stats"]["unique_graphs"]
    assert compiled.decode(QUERIES[:2], max_new_tokens=3) == plain.decode(QUERIES[:2], max_new_tokens=3)
    assert fast_compile["stats"]["unique_graphs"] == graphs  # decoding (KV cache) ran eagerly


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_attention_kernel_reaches_the_backbone_and_gives_the_same_embeddings(backbone_dirs, attn_implementation):
    config = GenVecConfig(
        model=ModelConfig(backbone=str(backbone_dirs["qwen3"]), embedding_dim=16, dtype="fp32", device="cpu",
                          attn_implementation=attn_implementation),
        tokens=TokensConfig(num_special_tokens=4, num_compression_tokens=2),
    )
    model = GenVecModel.from_config(config)
    assert model.backbone.config._attn_implementation == attn_implementation
    assert np.allclose(model.encode(QUERIES), _model(backbone_dirs["qwen3"]).encode(QUERIES), atol=1e-5)


@pytest.mark.slow
def test_layers_compiled_by_inductor_give_the_same_losses(backbone_dirs):
    """The real backend (C++ kernels on a CPU; about a minute the first time, cached afterwards)."""
    import torch._dynamo

    torch._dynamo.reset()
    plain, compiled = _model(backbone_dirs["qwen3"]), _model(backbone_dirs["qwen3"])
    compiled.compile_layers()
    targets = torch.randn(3, 16)
    plain_output, plain_grads = _loss_and_grads(plain, targets)
    compiled_output, compiled_grads = _loss_and_grads(compiled, targets)
    assert torch.allclose(plain_output.total, compiled_output.total, atol=1e-5)
    for expected, actual in zip(plain_grads, compiled_grads):
        assert torch.allclose(expected, actual, atol=1e-5)
    torch._dynamo.reset()

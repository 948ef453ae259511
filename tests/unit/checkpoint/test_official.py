"""Official LLM2Vec-Gen releases: synthetic releases in the official layout read back to the official math.

The reference embedding is computed here independently of genvec, the way the official code does: the release's
tokenizer on `text + "<question1>...<questionN>"`, left padding, the resized base model with the adapter rows
written into its embedding matrix, no position ids, final hidden states of the last K positions, R then A, mean.
"""

import json

import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer

import genvec
from genvec.checkpoint.official import RELEASES, parse_run_config, read_official
from genvec.errors import CheckpointError
from genvec.loading import convert
from genvec.testing import save_official_release, save_tiny_backbone

TEXTS = [
    "Where do polar bears live?",
    "  What is the capital city of the state by the river, and how many people live there?  ",
    "Train a vector model.",
]


def official_embeddings(release_dir, backbone_dir, texts: list[str]) -> np.ndarray:
    """The embedding as the official code computes it, in fp32."""
    tokenizer = AutoTokenizer.from_pretrained(str(release_dir))
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    adapter_config = json.loads((release_dir / "encoder" / "adapter_config.json").read_text())
    adapter = load_file(str(release_dir / "encoder" / "adapter_model.safetensors"))
    (rows,) = [v for k, v in adapter.items() if k.endswith("embed_tokens.trainable_tokens_delta")]
    encoder = AutoModel.from_pretrained(str(backbone_dir), dtype=torch.float32)
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        encoder.get_input_embeddings().weight[adapter_config["token_indices"]] = rows
    strings = "".join(f"<question{i}>" for i in range(1, len(rows) + 1))
    batch = tokenizer([text.strip() + strings for text in texts], padding=True, return_tensors="pt")
    k = int(json.loads((release_dir / "encoder_decoder_config.json").read_text())["encoding_mode"].split("_")[1])
    heads = {
        name: torch.load(release_dir / name, weights_only=True)["state_dict"]
        for name in ("reconstruction_mlp", "alignment_mlp")
    }
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state[:, -k:]  # (B, K, H)
        recon = heads["reconstruction_mlp"]
        decoder_inputs = hidden @ recon["projection.weight"].T + recon["projection.bias"]
        align = heads["alignment_mlp"]
        aligned = decoder_inputs @ align["projection.weight"].T + align["projection.bias"]  # (B, K, D)
    return aligned.mean(1).numpy()


@pytest.mark.parametrize(
    "architecture, full_embedding_matrix, wrap",
    [
        ("qwen3", False, "model"),  # tied embeddings
        ("qwen3", True, "model"),
        ("llama", False, "model"),  # untied embeddings, BOS prepended
        ("llama", True, "model"),
        ("qwen3", False, "causal_lm"),  # keys under model.embed_tokens, plus the tied lm_head copy
    ],
)
def test_embeddings_equal_the_official_math(backbone_dirs, tmp_path, architecture, full_embedding_matrix, wrap):
    backbone_dir = backbone_dirs[architecture]
    release = save_official_release(
        tmp_path / "release", backbone_dir, full_embedding_matrix=full_embedding_matrix, wrap=wrap
    )
    keys = load_file(str(release / "encoder" / "adapter_model.safetensors")).keys()
    assert any(k.endswith("embed_tokens.base_layer.weight") for k in keys) == full_embedding_matrix
    model = genvec.load_model(release, device="cpu")
    assert (model.num_special_tokens, model.num_compression_tokens, model.embedding_dim) == (4, 2, 16)
    embeddings = model.encode(TEXTS)
    assert embeddings.dtype == np.float32
    reference = official_embeddings(release, backbone_dir, TEXTS)
    assert np.abs(embeddings - reference).max() < 1e-5
    assert np.abs(embeddings).max() > 0.1  # not trivially equal


def test_release_becomes_the_genvec_config(backbone_dirs, tmp_path):
    release = read_official(save_official_release(tmp_path / "release", backbone_dirs["qwen3"], torch_dtype="bfloat16"))
    config = release.config()
    # The last model_name_or_path / torch_dtype lines win; K comes from the JSON, not the yml's last_1_tokens.
    assert config.model.backbone == str(backbone_dirs["qwen3"])
    assert config.model.dtype == "bf16"
    assert (config.tokens.num_special_tokens, config.tokens.num_compression_tokens) == (4, 2)
    assert config.model.embedding_dim == 16 and config.model.max_length == 512
    assert release.special_token_strings == ("<question1>", "<question2>", "<question3>", "<question4>")
    assert all(tensor.dtype == torch.float32 for tensor in release.tensors.values())


def test_adapter_rows_are_placed_by_token_id(backbone_dirs, tmp_path):
    backbone_dir = backbone_dirs["qwen3"]
    release = save_official_release(tmp_path / "release", backbone_dir)
    path = release / "encoder" / "adapter_model.safetensors"
    config_path = release / "encoder" / "adapter_config.json"
    before = genvec.load_model(release, device="cpu").encode(TEXTS)
    # The same release with the adapter rows stored in reverse order, and token_indices saying so.
    save_file({k: v.flip(0).contiguous() for k, v in load_file(str(path)).items()}, str(path))
    config = json.loads(config_path.read_text())
    config["token_indices"] = config["token_indices"][::-1]
    config_path.write_text(json.dumps(config))
    after = genvec.load_model(release, device="cpu").encode(TEXTS)
    assert np.abs(after - official_embeddings(release, backbone_dir, TEXTS)).max() < 1e-5
    assert np.array_equal(after, before)
    # Ids that are not the tokenizer's special tokens are refused.
    config["token_indices"] = [5, 6, 7, 8]
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"have ids \[300, 301, 302, 303\].* token_indices \[5, 6, 7, 8\]"):
        read_official(release)


def test_conversion_round_trips(backbone_dirs, tmp_path):
    release = save_official_release(tmp_path / "release", backbone_dirs["llama"], full_embedding_matrix=True)
    official = genvec.load_model(release, device="cpu")
    convert(release, tmp_path / "native", device="cpu")
    native = genvec.load_model(tmp_path / "native", device="cpu")
    assert native.config == official.config
    assert np.array_equal(native.encode(TEXTS), official.encode(TEXTS))
    for name, tensor in official.trainable_state_dict().items():
        assert torch.equal(native.trainable_state_dict()[name], tensor), name


def test_local_backbone_overrides_the_location_not_the_name(backbone_dirs, tmp_path):
    release = save_official_release(tmp_path / "release", backbone_dirs["qwen3"])
    run_config = release / "run_config.yml"
    run_config.write_text(run_config.read_text().replace(str(backbone_dirs["qwen3"]), "Qwen/Qwen3-0.6B"))
    with pytest.raises(genvec.GenVecError, match="could not load the backbone 'Qwen/Qwen3-0.6B'"):
        genvec.load_model(release, device="cpu")  # offline: the hub is unreachable
    model = genvec.load_model(release, backbone=str(backbone_dirs["qwen3"]), device="cpu")
    assert model.config.model.backbone == "Qwen/Qwen3-0.6B"
    assert model.backbone.name_or_path == str(backbone_dirs["qwen3"])


def test_head_with_a_pickled_object_is_refused(backbone_dirs, tmp_path):
    release = save_official_release(tmp_path / "release", backbone_dirs["qwen3"])
    head = torch.load(release / "alignment_mlp", weights_only=True)
    head["config"]["note"] = Payload()
    torch.save(head, release / "alignment_mlp")
    with pytest.raises(CheckpointError, match=r"alignment_mlp: refused or unreadable: .*weights_only=True"):
        genvec.load_model(release, device="cpu")
    assert not Payload.unpickled


def test_missing_and_unexpected_files_and_keys_are_reported_together(backbone_dirs, tmp_path):
    release = save_official_release(tmp_path / "release", backbone_dirs["qwen3"])
    (release / "reconstruction_mlp").unlink()
    path = release / "encoder" / "adapter_model.safetensors"
    adapter = load_file(str(path))
    adapter["base_model.model.layers.0.self_attn.q_proj.lora_A.weight"] = torch.zeros(8, 64)
    save_file(adapter, str(path))
    head = torch.load(release / "alignment_mlp", weights_only=True)
    del head["state_dict"]["projection.bias"]
    head["optimizer"] = {"step": 3}
    torch.save(head, release / "alignment_mlp")
    with pytest.raises(CheckpointError) as caught:
        genvec.load_model(release, device="cpu")
    message = str(caught.value)
    for expected in (
        "missing file reconstruction_mlp",
        "encoder/adapter_model.safetensors: unexpected key base_model.model.layers.0.self_attn.q_proj.lora_A.weight",
        "alignment_mlp: missing key state_dict.projection.bias",
        "alignment_mlp: unexpected key optimizer",
        "expected files: run_config.yml, encoder_decoder_config.json",
        "found: ['alignment_mlp', ",
    ):
        assert expected in message, (expected, message)


def test_backbone_that_does_not_fit_is_refused(backbone_dirs, tmp_path):
    release = save_official_release(tmp_path / "release", backbone_dirs["qwen3"])
    wide = save_tiny_backbone(tmp_path / "wide", "qwen3", hidden_size=96, num_heads=4, seed=1)
    with pytest.raises(CheckpointError, match="has hidden size 96, the release's special tokens have 64"):
        genvec.load_model(release, backbone=str(wide), device="cpu")
    with pytest.raises(CheckpointError, match="splits .* differently from the release's tokenizer"):
        genvec.load_model(release, backbone=str(save_tiny_backbone(tmp_path / "other", "qwen3", seed=5)), device="cpu")


def test_unsupported_encoding_mode_and_bad_json_are_reported(backbone_dirs, tmp_path):
    release = save_official_release(tmp_path / "release", backbone_dirs["qwen3"])
    (release / "encoder_decoder_config.json").write_text('{"encoding_mode": "mean_tokens"}')
    (release / "encoder" / "adapter_config.json").write_text("{not json")
    with pytest.raises(CheckpointError) as caught:
        read_official(release)
    assert "encoding_mode 'mean_tokens' is not supported" in str(caught.value)
    assert "adapter_config.json: not readable JSON" in str(caught.value)


def test_run_config_is_parsed_leniently_and_never_evaluated():
    text = (
        "model_name_or_path: Qwen/Qwen3-0.6B\n"
        "torch_dtype: None\n"
        "special_tokens: ['<question1>', '<question2>']\n"
        "accelerator_config: AcceleratorConfig(split_batches=False)\n"
        "  model_name_or_path: nested/ignored\n"
        "encoding_mode: 'last_10_tokens'\n"
        "max_input_length: __import__('os').system('false')\n"
        "model_name_or_path: Qwen/Qwen3-8B\n"
    )
    values = parse_run_config(text)
    assert values == {
        "model_name_or_path": "Qwen/Qwen3-8B",
        "torch_dtype": None,
        "special_tokens": "['<question1>', '<question2>']",
        "encoding_mode": "last_10_tokens",
        "max_input_length": "__import__('os').system('false')",
    }


def test_unreachable_hub_id_is_a_checkpoint_error_and_a_dotted_official_id_gets_the_real_ids():
    # Offline (HF_HUB_OFFLINE=1): the hub cannot say whether the id exists, but it is none of the releases.
    with pytest.raises(CheckpointError, match="could not be downloaded from the hub") as caught:
        genvec.load_model("McGill-NLP/LLM2Vec-Gen-Qwen3-0.6B", device="cpu")
    assert ("The official LLM2Vec-Gen releases are McGill-NLP/LLM2Vec-Gen-Qwen3-06B, McGill-NLP/LLM2Vec-Gen-Qwen3-17B, "
            "McGill-NLP/LLM2Vec-Gen-Qwen3-4B, McGill-NLP/LLM2Vec-Gen-Qwen3-8B, McGill-NLP/LLM2Vec-Gen-Qwen25-05B "
            "(the ids drop the dot of the size") in str(caught.value)


class RepositoryNotFound(RepositoryNotFoundError):
    """The hub's "repository not found" error, made without an HTTP response."""

    def __init__(self, repo_id: str) -> None:
        Exception.__init__(self, f"404 Client Error. Repository Not Found for url: https://huggingface.co/{repo_id}")


@pytest.mark.parametrize(
    ("repo_id", "error", "lists_releases"),
    [
        ("McGill-NLP/LLM2Vec-Gen-Qwen3-32B", RepositoryNotFound, True),  # looks official, does not exist
        ("mcgill-nlp/llm2vec-gen-qwen3-0.6b", RepositoryNotFound, True),  # any case
        ("McGill-NLP/LLM2Vec-Gen-Qwen3-8B", RepositoryNotFound, True),  # a release the hub no longer has
        ("McGill-NLP/LLM2Vec-Gen-Qwen3-8B", LocalEntryNotFoundError, False),  # a release, offline: the id is right
        ("someone/LLM2Vec-Gen-Qwen3-8B", RepositoryNotFound, False),  # not McGill-NLP's
        ("McGill-NLP/LLM2Vec-Qwen3-8B-mntp", RepositoryNotFound, False),  # another McGill-NLP model
    ],
)
def test_a_missing_hub_id_that_looks_like_an_official_release_lists_the_releases(
    monkeypatch, repo_id, error, lists_releases
):
    import huggingface_hub

    def not_found(repo, **kwargs):
        raise error(repo) if error is RepositoryNotFound else error("offline: the file is not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_found)
    with pytest.raises(CheckpointError, match="is not a local directory and could not be downloaded") as caught:
        genvec.load_model(repo_id, device="cpu")
    assert str(caught.value).startswith(repr(repo_id))
    listed = "The official LLM2Vec-Gen releases are " + ", ".join(RELEASES)
    assert (listed in str(caught.value)) == lists_releases


class Payload:
    """An object that is not a tensor: unpickling it would run its class's code."""

    unpickled = False

    def __setstate__(self, state):
        Payload.unpickled = True

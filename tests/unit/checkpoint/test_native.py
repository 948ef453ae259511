"""Native checkpoints: bit-exact round trip, atomic writes, and errors that list files and sizes."""

import json
import os
import stat

import numpy as np
import pytest
import torch

import genvec
from genvec.checkpoint.native import CONFIG_FILE, WEIGHTS_FILE
from genvec.errors import CheckpointError
from genvec.testing import save_tiny_backbone

TEXTS = ["Where do polar bears live?", "a much longer text about the river and the city and the world"]


def _train_a_little(model):
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        model.loss(TEXTS, ["yes", "no"], torch.randn(2, model.embedding_dim)).total.backward()
        optimizer.step()


def test_save_load_is_bit_exact(tiny_model, tiny_backbone_dir, tmp_path):
    _train_a_little(tiny_model)
    tiny_model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = genvec.load_model(tmp_path / "ckpt", device="cpu")
    for name, tensor in tiny_model.trainable_state_dict().items():
        assert torch.equal(loaded.trainable_state_dict()[name], tensor), name
    assert np.array_equal(loaded.encode(TEXTS), tiny_model.encode(TEXTS))
    assert loaded.config == tiny_model.config
    document = json.loads((tmp_path / "ckpt" / CONFIG_FILE).read_text())
    assert document["backbone"]["name_or_path"] == str(tiny_backbone_dir)
    assert document["config"]["tokens"]["num_special_tokens"] == 4
    assert document["config"]["model"]["embedding_dim"] == 16


def test_saving_again_replaces_the_checkpoint(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    _train_a_little(qwen3_model)
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    assert np.array_equal(genvec.load_model(tmp_path / "ckpt", device="cpu").encode(TEXTS), qwen3_model.encode(TEXTS))
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".tmp")]


def test_interrupted_save_is_refused(qwen3_model, tmp_path, monkeypatch):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    _train_a_little(qwen3_model)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    # The weights are replaced, then the process dies before the config that names their hash is written.
    monkeypatch.setattr("genvec.checkpoint.native.write_text_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        qwen3_model.save_pretrained(tmp_path / "ckpt")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        genvec.load_model(tmp_path / "ckpt", device="cpu")


def test_missing_files_are_listed(qwen3_model, tmp_path):
    expected = r"expected files genvec_config.json, trainable.safetensors \(genvec\) or .*; found nothing"
    with pytest.raises(CheckpointError, match=expected):
        genvec.load_model(tmp_path, device="cpu")
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"lacks its weights file.*found \['genvec_config.json'\]"):
        genvec.load_model(tmp_path / "ckpt", device="cpu")
    with pytest.raises(CheckpointError, match="neither a local directory nor a hub repo id"):
        genvec.load_model(tmp_path / "no" / "such" / "dir", device="cpu")


def test_backbone_with_another_hidden_size_is_refused(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    other = save_tiny_backbone(tmp_path / "wide", "qwen3", hidden_size=96, num_heads=4)
    with pytest.raises(CheckpointError, match="has hidden size 96, but the checkpoint .* hidden size 64"):
        genvec.load_model(tmp_path / "ckpt", backbone=str(other), device="cpu")


def test_tensors_that_do_not_fit_are_all_listed(qwen3_model, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    weights = {k: v.detach().clone() for k, v in qwen3_model.trainable_state_dict().items()}
    weights["alignment.bias"] = torch.zeros(3)
    del weights["reconstruction.bias"]
    weights["extra"] = torch.zeros(1)
    save_file(weights, str(path))
    with pytest.raises(CheckpointError) as caught:
        qwen3_model.load_trainable_state_dict(weights, source=str(path))
    message = str(caught.value)
    assert "missing tensor reconstruction.bias" in message and "unexpected tensor extra" in message
    assert "alignment.bias has shape (3,), the model expects (16,)" in message


def test_checkpoint_files_follow_the_umask_like_every_other_file(qwen3_model, tmp_path):
    previous = os.umask(0o022)
    try:
        qwen3_model.save_pretrained(tmp_path / "ckpt")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "ckpt").iterdir()}
    assert modes == {CONFIG_FILE: 0o644, WEIGHTS_FILE: 0o644}


def test_non_finite_trainable_tensors_are_refused_at_load(qwen3_model, tmp_path):
    with torch.no_grad():
        qwen3_model.reconstruction.bias[0] = float("nan")
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="tensor reconstruction.bias holds NaN or infinite values"):
        genvec.load_model(tmp_path / "ckpt", device="cpu")


def test_a_checkpoint_names_its_backbone_by_absolute_path_and_refuses_another_backbone(backbone_dirs, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.chdir(backbone_dirs["qwen3"].parent)
    relative = backbone_dirs["qwen3"].name
    model = genvec.GenVecModel.from_backbone(relative, num_special_tokens=4, num_compression_tokens=2,
                                             embedding_dim=16, dtype="fp32", device="cpu")
    model.save_pretrained(tmp_path / "ckpt")
    document = json.loads((tmp_path / "ckpt" / CONFIG_FILE).read_text())
    assert document["backbone"]["name_or_path"] == str(backbone_dirs["qwen3"].resolve())
    assert set(document["backbone"]["fingerprint"]) == {"architecture", "tokenizer"}
    monkeypatch.chdir(tmp_path)  # another working directory: the backbone is still found
    assert genvec.load_model(tmp_path / "ckpt", device="cpu").encode(["ice"]).shape == (1, 16)
    with pytest.raises(CheckpointError, match=r"is not the one .* was trained on .*its architecture and its tokenizer "
                                              r"differ"):
        genvec.load_model(tmp_path / "ckpt", backbone=str(backbone_dirs["llama"]), device="cpu")


def test_a_missing_backbone_directory_is_named_as_such(tmp_path):
    from genvec.errors import InputError

    with pytest.raises(InputError, match=r"the backbone directory './nowhere/model' does not exist"):
        genvec.GenVecModel.from_backbone("./nowhere/model", device="cpu")


def test_edited_or_malformed_checkpoint_configs_are_refused_as_damaged(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / CONFIG_FILE
    intact = json.loads(path.read_text())

    def write(document):
        path.write_text(json.dumps(document))

    edited = json.loads(json.dumps(intact))
    edited["config"]["tokens"]["num_compression_tokens"] = 3
    write(edited)
    with pytest.raises(CheckpointError, match=r"tokens.num_compression_tokens is 3 in genvec_config.json but 2 in the "
                                              r"weights; the config was edited after training"):
        genvec.load_model(tmp_path / "ckpt", device="cpu")
    for change, message in (({"format_version": "1"}, "has format_version '1', not an integer"),
                            ({"weights": 5}, "lacks \\(or has malformed\\) weights"),
                            ({"backbone": {"name_or_path": "x"}}, "backbone.hidden_size")):
        write({**intact, **change})
        with pytest.raises(CheckpointError, match=message):
            genvec.load_model(tmp_path / "ckpt", device="cpu")


def test_a_checkpoint_that_cannot_be_written_is_a_checkpoint_error(qwen3_model, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="cannot save a checkpoint to .*Not a directory"):
        qwen3_model.save_pretrained(tmp_path / "file" / "ckpt")


def test_load_model_of_nothing_and_a_truncated_backbone_are_clear_errors(backbone_dirs, tmp_path):
    import shutil

    from genvec.errors import InputError

    with pytest.raises(CheckpointError, match="takes a checkpoint directory or a hub repo id .* got None"):
        genvec.load_model(None)
    damaged = tmp_path / "damaged"
    shutil.copytree(backbone_dirs["qwen3"], damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InputError,
                       match="(?s)could not load the backbone .*SafetensorError.*a damaged or truncated weights file"):
        genvec.GenVecModel.from_backbone(str(damaged), device="cpu")

"""`loss.reconstruction_every`: steps between the reconstruction steps train on the alignment term alone, never read
the response, follow the step number (so a resumed run keeps the schedule), and are logged as such."""

import math

import pytest
import torch

import genvec
from genvec.config import GenVecConfig
from genvec.errors import ConfigError
from genvec.model import GenVecModel
from genvec.training import train
from tests.unit import training as tiny
from tests.unit.training import killed_at_step, read_metrics

OVERRIDES = {**tiny.OVERRIDES, "train.max_steps": 6, "train.save_every": 3, "train.keep_last": 5}


def make_config(backbone, run_dir, **overrides) -> GenVecConfig:
    return tiny.make_config(backbone, run_dir, OVERRIDES, **overrides)


def test_steps_between_reconstruction_steps_train_on_alignment_alone(backbone_dirs, tmp_path, monkeypatch):
    read = []
    reconstruction_loss = GenVecModel.reconstruction_loss

    def counted(self, states, responses, **kwargs):
        read.append(responses.input_ids.shape[0])
        return reconstruction_loss(self, states, responses, **kwargs)

    monkeypatch.setattr(GenVecModel, "reconstruction_loss", counted)
    train(make_config(backbone_dirs["qwen3"], tmp_path, **{"loss.reconstruction_every": 3}), tiny.make_examples(40))
    steps = [line for line in read_metrics(tmp_path) if "loss" in line]
    assert [line["step"] for line in steps] == [1, 2, 3, 4, 5, 6]
    reconstructed = [line["step"] for line in steps if math.isfinite(line["reconstruction"])]
    assert reconstructed == [1, 4]  # optimizer steps 0 and 3, counted from 0
    for line in steps:
        if line["step"] in reconstructed:
            assert line["loss"] == pytest.approx(line["reconstruction"] + line["alignment"], rel=1e-5)
        else:
            assert line["loss"] == pytest.approx(line["alignment"], rel=1e-6)
            assert line["tokens_per_s"] == line["padded_response_tokens"] == 0  # the response was not read
    assert sum(read) == 2 * 4  # two steps of 4 examples; the held-out measure reads no response
    assert (tmp_path / "final").is_dir()


def test_an_alignment_only_step_has_the_gradients_of_a_zero_reconstruction_weight(backbone_dirs):
    examples = tiny.make_examples(4)
    grads = []
    for weight, reconstruct in ((1.0, False), (0.0, True)):
        config = make_config(backbone_dirs["qwen3"], "unused", **{"loss.reconstruction_weight": weight})
        torch.manual_seed(0)
        model = GenVecModel.from_config(config)
        queries, responses = model.tokenize_batch(examples.queries, examples.responses)
        output = model(queries, responses, torch.as_tensor(examples.teacher_embeddings), reconstruct=reconstruct)
        assert math.isnan(output.reconstruction.item())
        assert output.total.item() == pytest.approx(output.alignment.item())
        output.total.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    assert all(torch.equal(grads[0][name], grads[1][name]) for name in grads[0])


def test_a_resumed_run_keeps_the_schedule_and_ends_where_an_uninterrupted_one_does(
    backbone_dirs, tmp_path, monkeypatch
):
    examples, option = tiny.make_examples(40), {"loss.reconstruction_every": 2}
    train(make_config(backbone_dirs["qwen3"], tmp_path / "straight", **option), examples)
    killed_at_step(monkeypatch, 5, lambda: train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **option),
                                                 examples))
    train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **option, **{"train.resume": "latest"}), examples)
    straight = genvec.load_model(tmp_path / "straight" / "final", device="cpu").trainable_state_dict()
    resumed = genvec.load_model(tmp_path / "killed" / "final", device="cpu").trainable_state_dict()
    assert all(torch.allclose(straight[name], resumed[name], atol=1e-6) for name in straight)
    straight, resumed = ([line["loss"] for line in read_metrics(tmp_path / run) if "loss" in line]
                         for run in ("straight", "killed"))
    assert resumed == pytest.approx(straight, rel=1e-5)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"loss.reconstruction_every": 0}, "loss.reconstruction_every: must be >= 1"),
    ({"loss.reconstruction_every": 2, "loss.alignment_weight": 0.0}, "needs alignment_weight > 0"),
])
def test_a_schedule_that_would_train_nothing_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        GenVecConfig().with_overrides(overrides)

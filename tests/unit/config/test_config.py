"""GenVecConfig: defaults, files, overrides, and errors that list every problem at once."""

import re

import pytest

from genvec.config import (
    DataConfig,
    GenVecConfig,
    ModelConfig,
    TeacherConfig,
    field_docs,
    field_names,
    parse_override_words,
)
from genvec.errors import ConfigError


def test_defaults_follow_the_published_recipe():
    config = GenVecConfig()
    assert (config.tokens.num_special_tokens, config.tokens.num_compression_tokens) == (10, 10)
    assert config.model.max_length == 512
    assert (config.loss.reconstruction_weight, config.loss.alignment_weight) == (1.0, 1.0)


def test_file_round_trip(tmp_path):
    config = GenVecConfig().with_overrides({"model.backbone": "org/name", "tokens.num_compression_tokens": 4})
    for name in ("config.yaml", "config.json"):
        config.to_file(tmp_path / name)
        assert GenVecConfig.from_file(tmp_path / name) == config


def test_overrides_convert_strings_to_field_types():
    config = GenVecConfig().with_overrides(
        ["--model.max_length", "256", "--loss.alignment_weight=0.5", "--model.embedding_dim", "None",
         "--model.instructions", '{"query": "Q:"}']
    )
    assert config.model.max_length == 256 and config.loss.alignment_weight == 0.5
    assert config.model.embedding_dim is None and config.model.instructions == {"query": "Q:"}


def test_every_problem_is_reported_together():
    with pytest.raises(ConfigError) as caught:
        GenVecConfig.from_dict(
            {"model": {"max_length": "many", "dtype": "fp8", "colour": 1}, "tokens": {"num_special_tokens": 0}}
        )
    message = str(caught.value)
    assert "model.max_length: expected an integer, got 'many'" in message
    assert "model.dtype: must be one of 'auto', 'bf16', 'fp16', 'fp32', got 'fp8'" in message
    assert "model.colour: unknown field" in message
    # Conversion errors come first; range checks run once the types are right.
    with pytest.raises(ConfigError) as caught:
        GenVecConfig.from_dict({"tokens": {"num_special_tokens": 4, "num_compression_tokens": 6},
                                "model": {"max_length": 3}, "loss": {"alignment_weight": -1}})
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 3
    assert any(line.startswith("tokens.num_compression_tokens: must be between 1 and") for line in lines)
    assert any(line.startswith("model.max_length: must hold one text token") for line in lines)
    assert "loss.alignment_weight: must be a finite number >= 0, got -1.0" in lines


def test_bad_overrides_and_files(tmp_path):
    with pytest.raises(ConfigError, match="train.nothing: no such field"):
        GenVecConfig().with_overrides({"train.nothing": 1})
    with pytest.raises(ConfigError, match="has no value"):
        parse_override_words(["--model.max_length"])
    with pytest.raises(ConfigError, match="does not exist"):
        GenVecConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="could not be parsed"):
        GenVecConfig.from_file(bad)


def test_every_field_has_a_docstring():
    for section in (ModelConfig, DataConfig, TeacherConfig):
        docs = field_docs(section)
        assert set(docs) == set(section.__dataclass_fields__)
    assert "model.backbone" in field_names(GenVecConfig)


def test_performance_switches_default_off_and_parse_from_words():
    assert (GenVecConfig().tokens.trainable_dtype, GenVecConfig().train.compile) == ("fp32", False)
    config = GenVecConfig().with_overrides(["--tokens.trainable_dtype", "bf16", "--train.compile", "true"])
    assert (config.tokens.trainable_dtype, config.train.compile) == ("bf16", True)
    with pytest.raises(ConfigError, match="tokens.trainable_dtype: must be one of 'fp32', 'bf16', got 'fp16'"):
        GenVecConfig().with_overrides({"tokens.trainable_dtype": "fp16"})


def test_non_finite_numbers_seeds_and_list_lengths_are_refused_when_the_config_is_built():
    with pytest.raises(ConfigError) as caught:
        GenVecConfig().with_overrides({
            "train.learning_rate": "nan", "train.alignment_learning_rate": "inf", "train.weight_decay": "nan",
            "train.max_grad_norm": "nan", "train.adam_epsilon": "inf", "loss.reconstruction_weight": "nan",
            "train.seed": "-1", "tokens.init_seed": str(2**70), "data.seed": "-7", "data.max_new_tokens": "100000",
        })
    lines = str(caught.value).splitlines()[1:]
    expected = [
        "train.learning_rate: must be a finite number > 0, got nan",
        "train.alignment_learning_rate: must be a finite number > 0 or None, got inf",
        "train.weight_decay: must be a finite number >= 0, got nan",
        "train.max_grad_norm: must be a finite number >= 0, got nan",
        "train.adam_epsilon: must be a finite number > 0, got inf",
        "loss.reconstruction_weight: must be a finite number >= 0, got nan",
        "train.seed: must be an integer between 0 and 2**63 - 1, got -1",
        f"tokens.init_seed: must be an integer between 0 and 2**63 - 1, got {2**70}",
        "data.seed: must be an integer between 0 and 2**63 - 1, got -7",
        "data.max_new_tokens: must be at most 32768, got 100000",
    ]
    assert sorted(lines) == sorted(expected)
    for betas in ("[0.9]", "[0.9, 0.99, 0.5]"):
        with pytest.raises(ConfigError, match=r"train.adam_betas: expected a list of 2 items"):
            GenVecConfig().with_overrides({"train.adam_betas": betas})
    assert GenVecConfig().with_overrides({"data.seed": "none"}).data.seed is None


def test_a_config_built_in_python_with_wrong_types_gets_a_config_error():
    from genvec.config import ModelConfig, TrainConfig

    cases = [
        (lambda: GenVecConfig(train=TrainConfig(max_steps="5")), "train.max_steps: expected int, got '5'"),
        (lambda: GenVecConfig(train=TrainConfig(learning_rate=None)), "train.learning_rate: expected float, got None"),
        (lambda: GenVecConfig(model={"backbone": "x"}), "model: expected a ModelConfig, got {'backbone': 'x'}"),
        (lambda: GenVecConfig(model=ModelConfig(embedding_dim=2.5)),
         "model.embedding_dim: expected int | None, got 2.5"),
        (lambda: GenVecConfig(train=TrainConfig(adam_betas=(0.9,))), "train.adam_betas: expected"),
    ]
    for build, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            build()
    assert GenVecConfig(train=TrainConfig(learning_rate=1)).train.learning_rate == 1  # an int is a valid float


def test_bad_files_and_override_shapes_are_config_errors(tmp_path):
    (tmp_path / "binary.yaml").write_bytes(bytes(range(128, 256)))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        GenVecConfig.from_file(tmp_path / "binary.yaml")
    with pytest.raises(ConfigError, match="unknown extension; use .yaml, .yml or .json"):
        GenVecConfig().to_file(tmp_path / "config.txt")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        GenVecConfig().to_file(tmp_path / "dir.yaml")
    with pytest.raises(ConfigError, match="overrides must be a mapping .* got the string 'train.max_steps=5'"):
        GenVecConfig().with_overrides("train.max_steps=5")
    with pytest.raises(ConfigError, match="model.embedding_dim: must be between 1 and 65536 or None, got 1000000000"):
        GenVecConfig().with_overrides({"model.embedding_dim": 10**9})


def test_serve_and_eval_are_sections_with_documented_checked_fields():
    from genvec.config import EvalConfig, ServeConfig

    for section in (ServeConfig, EvalConfig):
        assert set(field_docs(section)) == set(section.__dataclass_fields__)
    assert {"serve.port", "serve.truncate", "eval.batch_size", "eval.similarity"} <= set(field_names(GenVecConfig))
    assert (GenVecConfig().serve, GenVecConfig().eval) == (ServeConfig(), EvalConfig())
    with pytest.raises(ConfigError) as caught:
        GenVecConfig().with_overrides({"serve.port": 70000, "serve.batch_wait_ms": -1, "eval.batch_size": 0})
    assert sorted(str(caught.value).splitlines()[1:]) == [
        "eval.batch_size: must be >= 1, got 0",
        "serve.batch_wait_ms: must be between 0 and 1000, got -1",
        "serve.port: must be between 0 and 65535, got 70000",
    ]
    with pytest.raises(ConfigError, match=r"eval.similarity: must be one of 'auto', 'cosine', 'dot', got 'l2'"):
        GenVecConfig().with_overrides(["--eval.similarity", "l2"])


def test_serve_prompts_are_named_instructions_read_from_a_file_or_the_command_line(tmp_path):
    (tmp_path / "config.yaml").write_text("serve:\n  prompts:\n    refute: Generate text that refutes this claim\n")
    config = GenVecConfig.from_layers(tmp_path / "config.yaml")
    assert config.serve.prompts == {"refute": "Generate text that refutes this claim"}
    config = GenVecConfig().with_overrides(["--serve.prompts", '{"arguana": "Refute:", "scifact": "Verify:"}'])
    assert config.serve.prompts == {"arguana": "Refute:", "scifact": "Verify:"}
    with pytest.raises(ConfigError) as caught:
        GenVecConfig().with_overrides({"serve.prompts": {"query": "x", "two words": "y", "ok": " "},
                                       "serve.otlp_endpoint": "localhost:4318", "serve.max_rerank_documents": 0})
    lines = str(caught.value).splitlines()[1:]
    assert sum("a name must be letters, digits" in line for line in lines) == 2  # 'query' and 'two words'
    assert "serve.prompts.ok: the instruction is empty" in lines
    assert "serve.otlp_endpoint: must be an http:// or https:// address, got 'localhost:4318'" in lines
    assert "serve.max_rerank_documents: must be >= 1, got 0" in lines


def test_layers_apply_in_order_defaults_file_environment_overrides(tmp_path):
    (tmp_path / "config.yaml").write_text("serve:\n  port: 1001\n  max_inputs: 7\n  host: 0.0.0.0\n"
                                          "eval:\n  batch_size: 8\n")
    environ = {"GENVEC_SERVE_PORT": "1002", "GENVEC_SERVE_MAX_INPUTS": "9", "GENVEC_SERVE_MODEL_NAME": "none",
               "GENVEC_EVAL_SIMILARITY": "dot", "GENVEC_API_KEY": "not a setting", "HOME": "/x"}
    config = GenVecConfig.from_layers(tmp_path / "config.yaml", environ=environ, environ_sections=["serve", "eval"],
                                      overrides=["--serve.port", "1003"])
    assert (config.serve.host, config.serve.max_inputs, config.serve.port) == ("0.0.0.0", 9, 1003)
    assert config.serve.model_name is None and (config.eval.batch_size, config.eval.similarity) == (8, "dot")
    # Only the sections named read the environment.
    config = GenVecConfig.from_layers(environ=environ, environ_sections=["serve"])
    assert (config.serve.port, config.eval.similarity) == (1002, "auto")
    assert GenVecConfig.from_layers() == GenVecConfig()
    with pytest.raises(ConfigError, match=r"environ_sections \['server'\]; valid sections: model, .*, serve, eval"):
        GenVecConfig.from_layers(environ=environ, environ_sections=["server"])


def test_every_problem_of_every_layer_is_reported_together(tmp_path):
    (tmp_path / "config.yaml").write_text("serve:\n  max_inputs: many\n")
    environ = {"GENVEC_SERVE_PORT": "eighty", "GENVEC_SERVE_PROT": "80", "GENVEC_EVAL_BATCH_SIZE": "1.5"}
    with pytest.raises(ConfigError) as caught:
        GenVecConfig.from_layers(tmp_path / "config.yaml", environ=environ, environ_sections=["serve", "eval"],
                                 overrides={"serve.truncate": "maybe", "serve.colour": "red"})
    header, *lines = str(caught.value).splitlines()
    assert header == (f"invalid configuration in {tmp_path / 'config.yaml'} <- environment variables "
                      "GENVEC_EVAL_BATCH_SIZE, GENVEC_SERVE_PORT, GENVEC_SERVE_PROT <- overrides:")
    assert "GENVEC_SERVE_PORT: expected an integer, got 'eighty'" in lines
    assert "GENVEC_EVAL_BATCH_SIZE: expected an integer, got '1.5'" in lines
    assert any(line.startswith("GENVEC_SERVE_PROT: no such setting; valid variables: GENVEC_SERVE_HOST, "
                               "GENVEC_SERVE_PORT,") for line in lines)
    assert "serve.max_inputs: expected an integer, got 'many'" in lines
    assert "serve.truncate: must be one of 'error', 'cut', got 'maybe'" in lines
    assert any(line.startswith("serve.colour: no such field; valid fields: serve.host, serve.port,") and
               "model." not in line for line in lines)
    assert len(lines) == 6
    # Range checks see the final values, and the message names the variables that set them.
    with pytest.raises(ConfigError) as caught:
        GenVecConfig.from_layers(environ={"GENVEC_SERVE_PORT": "70000"}, environ_sections=["serve"])
    assert str(caught.value).splitlines() == [
        "invalid configuration in environment variables GENVEC_SERVE_PORT:",
        "serve.port: must be between 0 and 65535, got 70000",
    ]
    assert GenVecConfig.from_layers(environ={"GENVEC_SERVE_PORT": "70000"}, environ_sections=["serve"],
                                    overrides={"serve.port": 8080}).serve.port == 8080


def test_files_leave_out_the_serve_and_eval_sections_at_their_defaults(tmp_path):
    # genvec 0.1.0 refuses sections it does not know: checkpoints and run configs of a default use stay readable.
    assert set(GenVecConfig().to_dict()) == {"model", "tokens", "loss", "data", "teacher", "train"}
    config = GenVecConfig().with_overrides({"serve.port": 9000})
    assert config.to_dict()["serve"]["port"] == 9000 and "eval" not in config.to_dict()
    config.to_file(tmp_path / "config.yaml")
    assert GenVecConfig.from_file(tmp_path / "config.yaml") == config

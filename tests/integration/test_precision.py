"""int8 and binary embeddings through every door of one calibrated tiny model: the library, `genvec encode
--precision` (a .npy and a .jsonl file), bulk Parquet shards read back with pyarrow alone, and the server (the
`openai` SDK with Voyage's `output_dtype`, the `cohere` SDK's `ClientV2.embed(embedding_types=...)`) give the same
codes, equal to sentence-transformers' `quantize_embeddings` on the model's stored ranges; `genvec calibrate`
writes a new checkpoint; bad values are clear errors (4xx in the server)."""

import base64
import json

import cohere
import httpx2 as httpx
import numpy as np
import openai
import pyarrow.parquet as pq
import pytest
from sentence_transformers.util.quantization import quantize_embeddings
from test_dimensions import SAMPLE, TEXTS, D
from test_serve import KEY, Server

from genvec.cli import main
from genvec.errors import InputError
from genvec.files import sha256_file
from genvec.loading import load_model
from genvec.quantization import ranges_for
from genvec.truncation import make_truncatable

SHORT = 8  # a multiple of 8: binary packs 8 coordinates a byte


@pytest.fixture(scope="module")
def calibrated_dir(plain_dir, tmp_path_factory):
    """The plain model calibrated by `genvec calibrate`."""
    root = tmp_path_factory.mktemp("calibrated")
    (root / "sample.txt").write_text("\n".join(SAMPLE) + "\n")
    assert main(["calibrate", str(plain_dir), "--texts", str(root / "sample.txt"), "--output", str(root / "model"),
                 "--device", "cpu"]) == 0
    return root / "model"


@pytest.fixture(scope="module")
def calibrated(calibrated_dir):
    return load_model(calibrated_dir, device="cpu")


@pytest.fixture(scope="module")
def truncatable(plain_dir):
    """The plain model made truncatable, which calibrates it too (on the rotated sample, per prefix size)."""
    model = load_model(plain_dir, device="cpu")
    make_truncatable(model, SAMPLE)
    return model


def st_codes(model, precision: str, *, normalize: bool, dimensions: int | None = None, side: str | None = None):
    """sentence-transformers' codes of the model's float embeddings, on the model's stored ranges."""
    floats = model.encode(TEXTS, side=side, normalize=normalize, dimensions=dimensions)
    ranges = ranges_for(model.quantization, model.embedding_dim, dimensions, normalize)
    return quantize_embeddings(floats, precision, ranges=ranges)


def test_calibrate_writes_a_new_checkpoint_with_the_ranges(plain_dir, calibrated_dir, calibrated, capsys, tmp_path):
    record = calibrated.quantization
    assert record["num_texts"] == len(SAMPLE) and np.asarray(record["ranges"]).shape == (2, D)
    assert list(record["normalized_ranges"]) == [str(D)]
    assert json.loads((calibrated_dir / "genvec_config.json").read_text())["quantization"] == record
    plain = load_model(plain_dir, device="cpu")
    assert plain.quantization is None
    np.testing.assert_array_equal(calibrated.encode(TEXTS), plain.encode(TEXTS))  # the weights are the same
    before = {path.name: sha256_file(path) for path in plain_dir.iterdir()}
    (tmp_path / "sample.txt").write_text("\n".join(SAMPLE))
    assert main(["calibrate", str(plain_dir), "--texts", str(tmp_path / "sample.txt"), "--output",
                 str(plain_dir)]) == 2
    assert "exists and is the model itself" in capsys.readouterr().err
    assert {path.name: sha256_file(path) for path in plain_dir.iterdir()} == before


@pytest.mark.parametrize("precision", ["int8", "binary"])
def test_the_library_the_cli_and_bulk_parquet_give_the_same_codes(calibrated, calibrated_dir, tmp_path, precision):
    expected = st_codes(calibrated, precision, normalize=True)
    codes = calibrated.encode(TEXTS, normalize=True, precision=precision)
    assert codes.dtype == np.int8 and codes.shape == (len(TEXTS), D if precision == "int8" else D // 8)
    np.testing.assert_array_equal(codes, expected)
    model_flags = ["--model", str(calibrated_dir), "--device", "cpu", "--normalize", "--precision", precision]
    assert main(["encode", *model_flags, *TEXTS, "--output", str(tmp_path / "v.npy")]) == 0
    saved = np.load(tmp_path / "v.npy")
    assert saved.dtype == np.int8
    np.testing.assert_array_equal(saved, expected)
    assert main(["encode", *model_flags, *TEXTS, "--output", str(tmp_path / "v.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [record["embedding"] for record in records] == expected.tolist()
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": text}) + "\n"
                                                   for i, text in enumerate(TEXTS)))
    assert main(["encode", *model_flags, "--input", str(tmp_path / "corpus.jsonl"), "--output",
                 str(tmp_path / "shards"), "--shard-size", "2"]) == 0
    table = pq.read_table(tmp_path / "shards")  # pyarrow alone
    assert str(table.schema.field("embedding").type) == f"fixed_size_list<element: int8>[{expected.shape[1]}]"
    assert table.column("id").to_pylist() == ["d0", "d1", "d2"]
    np.testing.assert_array_equal(np.asarray(table.column("embedding").to_pylist(), dtype=np.int8), expected)
    manifest = json.loads((tmp_path / "shards" / "_manifest.json").read_text())
    assert manifest["precision"] == precision and manifest["dimensions"] is None


def test_bulk_takes_dimensions_and_refuses_a_resume_with_other_settings(truncatable, tmp_path, capsys):
    model = truncatable
    assert list(model.quantization["normalized_ranges"]) == ["1", "2", "4", "8", "16"]
    model.save_pretrained(tmp_path / "model")
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"id": i, "text": text}) + "\n"
                                                   for i, text in enumerate(TEXTS)))
    flags = ["encode", "--model", str(tmp_path / "model"), "--device", "cpu", "--input", str(tmp_path / "corpus.jsonl"),
             "--output", str(tmp_path / "shards"), "--query"]
    assert main([*flags, "--dimensions", str(SHORT), "--precision", "uint8"]) == 0
    table = pq.read_table(tmp_path / "shards")
    assert str(table.schema.field("embedding").type) == f"fixed_size_list<element: uint8>[{SHORT}]"
    expected = st_codes(model, "uint8", normalize=False, dimensions=SHORT, side="query")
    np.testing.assert_array_equal(np.asarray(table.column("embedding").to_pylist(), dtype=np.uint8), expected)
    assert json.loads((tmp_path / "shards" / "_manifest.json").read_text())["dimensions"] == SHORT
    capsys.readouterr()
    assert main([*flags, "--dimensions", "4", "--precision", "uint8"]) == 2
    assert "dimensions" in capsys.readouterr().err
    assert main([*flags, "--dimensions", str(SHORT), "--precision", "ubinary"]) == 2
    assert "precision" in capsys.readouterr().err
    floats = model.encode_query(TEXTS, dimensions=SHORT)
    assert main([*flags[:-3], "--output", str(tmp_path / "f"), "--query", "--dimensions", str(SHORT)]) == 0
    np.testing.assert_array_equal(np.asarray(pq.read_table(tmp_path / "f").column("embedding").to_pylist(),
                                             dtype=np.float32), floats)


def test_bad_values_are_clear_errors_in_the_library_and_the_cli(plain_dir, calibrated, truncatable, capsys):
    plain = load_model(plain_dir, device="cpu")
    with pytest.raises(InputError, match="genvec calibrate MODEL"):
        plain.encode(TEXTS, precision="uint8")
    with pytest.raises(InputError, match="precision must be one of"):
        calibrated.encode_document(TEXTS, precision="int4")
    with pytest.raises(InputError, match="multiple of 8"):
        truncatable.encode(TEXTS, precision="binary", dimensions=12)
    with pytest.raises(InputError, match="has them for 1, 2, 4, 8, 16"):  # unit-length ranges per prefix size
        truncatable.encode(TEXTS, precision="int8", dimensions=12, normalize=True)
    codes = truncatable.encode(TEXTS, precision="int8", dimensions=12)  # raw ranges serve any prefix
    np.testing.assert_array_equal(codes, st_codes(truncatable, "int8", normalize=False, dimensions=12))
    assert main(["encode", "--model", str(plain_dir), "--device", "cpu", TEXTS[0], "--precision", "int8"]) == 2
    assert "genvec calibrate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["encode", "--model", str(plain_dir), TEXTS[0], "--precision", "int4"])


def test_the_server_answers_the_same_codes_to_openai_and_cohere_clients(calibrated):
    server = Server(calibrated, api_key=KEY)
    try:
        server.wait_ready()
        api = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        for precision in ("int8", "binary", "ubinary"):
            expected = st_codes(calibrated, precision, normalize=True)
            answer = api.embeddings.create(model="tiny-genvec", input=TEXTS, encoding_format="float",
                                           extra_body={"output_dtype": precision})
            assert [item.embedding for item in answer.data] == expected.tolist()
            packed = api.embeddings.create(model="tiny-genvec", input=TEXTS, encoding_format="base64",
                                           extra_body={"output_dtype": precision})
            decoded = [np.frombuffer(base64.b64decode(item.embedding), dtype=expected.dtype) for item in packed.data]
            np.testing.assert_array_equal(np.stack(decoded), expected)
        with pytest.raises(openai.BadRequestError, match="output_dtype must be one of") as refused:
            api.embeddings.create(model="tiny-genvec", input=TEXTS, extra_body={"output_dtype": "int4"})
        assert refused.value.body["param"] == "output_dtype"

        client = cohere.ClientV2(api_key=KEY, base_url=server.url)
        answer = client.embed(model="tiny-genvec", input_type="search_query", texts=TEXTS,
                              embedding_types=["float", "int8", "uint8", "binary", "ubinary"])
        np.testing.assert_allclose(answer.embeddings.float_, calibrated.encode_query(TEXTS, normalize=True),
                                   atol=1e-6)
        for precision in ("int8", "uint8", "binary", "ubinary"):
            assert getattr(answer.embeddings, precision) == st_codes(calibrated, precision, normalize=True,
                                                                     side="query").tolist()
        assert answer.texts == TEXTS and answer.meta.billed_units.input_tokens > 0
        for bad in ({"embedding_types": ["int4"]}, {"truncate": "START"}, {"output_dimension": 4}):
            with pytest.raises(cohere.errors.BadRequestError):
                client.embed(model="tiny-genvec", input_type="search_document", texts=TEXTS, **bad)
        response = httpx.post(server.url + "/v2/embed", headers={"Authorization": f"Bearer {KEY}"},
                              json={"texts": TEXTS, "embedding_types": ["int4"]})
        assert response.status_code == 400 and response.json()["error"]["param"] == "embedding_types"
    finally:
        server.close()


def test_a_server_of_a_model_never_calibrated_says_how_to_calibrate(served_model):
    server = Server(served_model, api_key=KEY)
    try:
        server.wait_ready()
        api = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="genvec calibrate") as refused:
            api.embeddings.create(model="tiny-genvec", input=TEXTS, extra_body={"output_dtype": "int8"})
        assert refused.value.body["param"] == "output_dtype"
        binary = api.embeddings.create(model="tiny-genvec", input=TEXTS, encoding_format="float",
                                       extra_body={"output_dtype": "ubinary"})  # signs need no calibration
        assert [item.embedding for item in binary.data] == served_model.encode(TEXTS, precision="ubinary").tolist()
        response = httpx.post(server.url + "/v2/embed", headers={"Authorization": f"Bearer {KEY}"},
                              json={"texts": TEXTS, "embedding_types": ["uint8"]})
        assert response.status_code == 400 and "genvec calibrate" in response.json()["error"]["message"]
    finally:
        server.close()

"""Truncatable checkpoints (`genvec.truncation`) and `dimensions` in the library: the rotation changes no full-size
similarity, its first coordinates keep more of the sample than a random rotation's, the record survives save and
load, and every bad `dimensions` or basis is a clear error."""

import json

import numpy as np
import pytest
import torch

from genvec import inference
from genvec.checkpoint.native import CONFIG_FILE
from genvec.errors import CheckpointError, InputError
from genvec.loading import load_model
from genvec.truncation import make_truncatable, principal_directions

TEXTS = [f"{topic} {detail}" for topic in ("polar bears", "rivers", "glaciers", "volcanoes", "the stock market",
                                           "lemon cake")
         for detail in ("live where it is cold", "how do they form?", "move slowly downhill", "a short history")]
D = 16  # conftest's EMBEDDING_DIM


def sample(model) -> np.ndarray:
    """The vectors `make_truncatable` reads: each text with the query instruction, then with the document one."""
    return np.concatenate([model.encode_query(TEXTS), model.encode_document(TEXTS)]).astype(np.float64)


def share(vectors: np.ndarray, d: int, centred: bool) -> float:
    """Share of the total variance (or second moment) in the first d coordinates of (S, D) `vectors`."""
    vectors = vectors - vectors.mean(0) if centred else vectors
    energy = (vectors**2).sum(0)
    return float(energy[:d].sum() / energy.sum())


@pytest.mark.parametrize("basis", ["pca", "svd"])
def test_the_rotation_leaves_every_full_size_similarity_equal(qwen3_model, basis):
    before = qwen3_model.encode(TEXTS)
    record = make_truncatable(qwen3_model, TEXTS, basis=basis)
    after = qwen3_model.encode(TEXTS)
    assert np.abs(after - before).max() > 1e-2  # the coordinates did change
    assert np.abs(after @ after.T - before @ before.T).max() < 1e-5
    cosines = inference.relevance(after, after) - inference.relevance(before, before)
    assert np.abs(cosines).max() < 1e-5
    assert record == qwen3_model.truncation and record["basis"] == basis
    assert (record["num_texts"], record["num_vectors"], record["sides"]) == (len(TEXTS), 2 * len(TEXTS),
                                                                            ["query", "document"])
    assert list(record["retained"]) == ["1", "2", "4", "8", "16"] and record["retained"]["16"] == pytest.approx(1)
    assert record["measure"] == {"pca": "variance", "svd": "second_moment"}[basis]


def test_the_first_coordinates_of_pca_keep_more_than_a_random_rotations(qwen3_model):
    original = sample(qwen3_model)
    record = make_truncatable(qwen3_model, TEXTS, basis="pca")
    rotated = sample(qwen3_model)
    random_rotation, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(1),
                                                     dtype=torch.float64))
    randomly_rotated = original @ random_rotation.numpy()
    for d in (1, 2, 4, 8):
        kept = share(rotated, d, centred=True)
        assert kept == pytest.approx(record["retained"][str(d)], abs=1e-4)  # the record says what the model does
        assert kept > share(randomly_rotated, d, centred=True) + 0.01
        assert kept >= share(original, d, centred=True)
    shares = list(record["retained"].values())
    assert shares == sorted(shares)


def test_principal_directions_are_orthonormal_and_ordered():
    vectors = np.random.default_rng(0).normal(size=(200, 6)) * np.array([5, 1, 3, 0.5, 2, 0.1])
    for basis in ("pca", "svd"):
        directions, spectrum = principal_directions(vectors, basis)
        assert torch.allclose(directions.T @ directions, torch.eye(6, dtype=torch.float64), atol=1e-10)
        assert (spectrum[:-1] >= spectrum[1:]).all()
        assert directions[:, 0].abs().argmax() == 0  # the axis of most spread comes first


def test_dimensions_truncates_then_normalises(qwen3_model):
    full = qwen3_model.encode(TEXTS[:5], dimensions=D)  # D is always allowed, truncatable or not
    assert np.array_equal(full, qwen3_model.encode(TEXTS[:5]))
    make_truncatable(qwen3_model, TEXTS)
    full = qwen3_model.encode(TEXTS[:5])
    short = qwen3_model.encode(TEXTS[:5], dimensions=4, normalize=True)
    assert short.shape == (5, 4) and short.dtype == np.float32
    assert np.abs(short - inference.normalize_rows(full[:, :4])).max() < 1e-6
    assert np.abs(np.linalg.norm(short, axis=1) - 1).max() < 1e-5
    assert np.array_equal(qwen3_model.encode_query(TEXTS[:2], dimensions=8), qwen3_model.encode_query(TEXTS[:2])[:, :8])
    assert np.array_equal(qwen3_model.encode_document(TEXTS[:2], dimensions=2),
                          qwen3_model.encode_document(TEXTS[:2])[:, :2])


@pytest.mark.parametrize(("dimensions", "message"), [
    (D + 1, r"dimensions=17 is outside 1\.\.16"),
    (0, r"dimensions=0 is outside 1\.\.16"),
    (-3, r"dimensions=-3 is outside"),
    (4.0, r"dimensions must be a whole number from 1 to 16 .*a float"),
    (True, r"a bool"),
    ("8", r"a str"),
])
def test_a_bad_dimensions_is_a_clear_error(qwen3_model, dimensions, message):
    make_truncatable(qwen3_model, TEXTS)
    with pytest.raises(InputError, match=message) as refused:
        qwen3_model.encode(TEXTS[:1], dimensions=dimensions)
    assert refused.value.param == "dimensions"


def test_a_model_that_is_not_truncatable_refuses_fewer_dimensions_and_says_how_to_fix_it(qwen3_model):
    with pytest.raises(InputError, match=r"not truncatable.*genvec make-truncatable MODEL --texts FILE") as refused:
        qwen3_model.encode_query(TEXTS[:1], dimensions=4)
    assert refused.value.param == "dimensions"


def test_an_unknown_basis_or_no_texts_is_refused_and_leaves_the_model_alone(qwen3_model):
    weight = qwen3_model.alignment.weight.detach().clone()
    with pytest.raises(InputError, match=r"basis must be one of pca, svd, got 'ica'"):
        make_truncatable(qwen3_model, TEXTS, basis="ica")
    with pytest.raises(InputError, match="texts"):
        make_truncatable(qwen3_model, [])
    assert torch.equal(qwen3_model.alignment.weight, weight) and qwen3_model.truncation is None


def test_a_small_sample_is_warned_of(qwen3_model):
    with pytest.warns(UserWarning, match="fewer vectors than the 16 coordinates"):
        make_truncatable(qwen3_model, TEXTS[:3])


def test_save_and_load_keep_the_record_and_the_vectors(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "plain")
    assert load_model(tmp_path / "plain", device="cpu").truncation is None  # a checkpoint without it: not truncatable
    record = make_truncatable(qwen3_model, TEXTS, basis="svd")
    qwen3_model.save_pretrained(tmp_path / "truncatable")
    loaded = load_model(tmp_path / "truncatable", device="cpu")
    assert loaded.truncation == record
    assert np.array_equal(loaded.encode(TEXTS[:3], dimensions=4), qwen3_model.encode(TEXTS[:3], dimensions=4))
    document = json.loads((tmp_path / "truncatable" / CONFIG_FILE).read_text())
    document["truncation"] = "pca"
    (tmp_path / "truncatable" / CONFIG_FILE).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="malformed.*truncation"):
        load_model(tmp_path / "truncatable", device="cpu")

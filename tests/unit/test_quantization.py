"""genvec.quantization: codes equal to sentence-transformers' `quantize_embeddings` on the same ranges; the record's
ranges by dimensions and normalisation; clear errors for bad values; and a model calibrated, saved and loaded."""

import json

import numpy as np
import pytest
from sentence_transformers.util.quantization import quantize_embeddings

from genvec.calibration import calibrate_model
from genvec.errors import InputError
from genvec.loading import load_model
from genvec.quantization import (
    PRECISIONS,
    bytes_per_vector,
    calibrate,
    calibration_record,
    check_precision,
    quantize,
    ranges_for,
)

TEXTS = ["where do polar bears live?", "How do rivers form?", "a third text", "glaciers move slowly downhill"]


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 24)).astype(np.float32)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_codes_equal_sentence_transformers_on_the_same_ranges(sample, precision):
    ranges = calibrate(sample)
    vectors = np.random.default_rng(1).normal(scale=1.5, size=(9, 24)).astype(np.float32)  # some outside the ranges
    vectors[0, :3] = 0.0  # a sign bit of exactly zero is 0, as in sentence-transformers
    codes = quantize(vectors, precision, ranges)
    expected = quantize_embeddings(vectors, precision, ranges=ranges)
    assert codes.dtype == expected.dtype and codes.shape == expected.shape
    np.testing.assert_array_equal(codes, expected)
    assert codes.nbytes == len(vectors) * bytes_per_vector(24, precision)


def test_calibrate_gives_every_coordinate_the_samples_minimum_and_maximum(sample):
    sample[:, 5] *= 0.01  # a coordinate of little spread, as the last ones of a truncatable model
    ranges = calibrate(sample)
    assert ranges.shape == (2, 24) and ranges.dtype == np.float32
    np.testing.assert_array_equal(ranges, [[sample.min()] * 24, [sample.max()] * 24])
    codes = quantize(sample, "uint8", ranges)
    assert codes.min() == 0 and codes.max() >= 254  # the maximum lands on 255 up to rounding
    assert np.ptp(codes[:, 5]) <= 3  # not stretched to 256 levels: the codes keep the coordinates' proportions
    cosines = np.corrcoef(sample.ravel(), codes.astype(np.float32).ravel())[0, 1]
    assert cosines > 0.999


def test_binary_packs_the_signs_eight_per_byte():
    vectors = np.array([[1, -1, 1, -1, 1, -1, 1, -1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -2]], dtype=np.float32)
    assert quantize(vectors, "ubinary").tolist() == [[0b10101010, 0b11111110]]
    assert quantize(vectors, "binary").tolist() == [[0b10101010 - 128, 0b11111110 - 128]]


def test_a_range_of_zero_width_does_not_divide_by_zero(sample):
    ranges = np.stack([sample.min(0), sample.max(0)])  # per-coordinate ranges, as a user may pass them
    sample[:, 3] = ranges[:, 3] = 0.25
    codes = quantize(sample, "int8", ranges)
    assert np.isfinite(codes.astype(float)).all() and (codes[:, 3] == -128).all()
    np.testing.assert_array_equal(codes, quantize_embeddings(sample, "int8", ranges=ranges))
    constant = np.full((4, 24), 0.5, np.float32)
    assert (quantize(constant, "uint8", calibrate(constant)) == 0).all()


def test_bad_values_are_clear_errors(sample):
    with pytest.raises(InputError, match="precision must be one of float32, int8, uint8, binary, ubinary") as bad:
        check_precision("int4")
    assert bad.value.param == "precision"
    with pytest.raises(InputError, match="genvec calibrate"):
        quantize(sample, "int8")
    with pytest.raises(InputError, match=r"shape \(2, 24\)"):
        quantize(sample, "uint8", calibrate(sample[:, :8]))
    with pytest.raises(InputError, match="multiple of 8") as packed:
        quantize(sample[:, :12], "binary")
    assert packed.value.param == "dimensions"
    with pytest.raises(InputError, match="float embeddings"):
        quantize(sample.astype(np.int8), "int8", calibrate(sample))
    with pytest.raises(InputError, match="at least 2 vectors"):
        calibrate(sample[:1])
    with pytest.raises(InputError, match="NaN"):
        calibrate(np.full((3, 4), np.nan, dtype=np.float32))
    with pytest.raises(InputError, match="multiple of 8"):
        bytes_per_vector(10, "ubinary")


def test_ranges_for_fit_dimensions_and_normalisation(sample):
    record = json.loads(json.dumps(calibration_record(sample, [8, 24])))  # as read back from genvec_config.json
    np.testing.assert_array_equal(ranges_for(record, 24, None, normalize=False), calibrate(sample))
    np.testing.assert_array_equal(ranges_for(record, 24, 8, normalize=False), calibrate(sample)[:, :8])
    unit = sample[:, :8] / np.linalg.norm(sample[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(ranges_for(record, 24, 8, normalize=True), calibrate(unit), rtol=1e-6)
    assert np.abs(ranges_for(record, 24, None, normalize=True)).max() <= 1.0
    with pytest.raises(InputError, match="has them for 8, 24") as missing:
        ranges_for(record, 24, 16, normalize=True)
    assert missing.value.param == "dimensions"
    with pytest.raises(InputError, match="genvec calibrate MODEL --texts FILE --output DIR"):
        ranges_for(None, 24, None, normalize=False)
    with pytest.raises(InputError, match="record is damaged"):
        ranges_for({**record, "ranges": [[0.0] * 24]}, 24, None, normalize=False)


def test_a_calibrated_model_quantizes_alike_after_saving(qwen3_model, tmp_path):
    with pytest.raises(InputError, match="genvec calibrate") as refused:
        qwen3_model.encode(TEXTS, precision="int8")
    assert refused.value.param == "precision"
    record = calibrate_model(qwen3_model, TEXTS)
    assert record["num_texts"] == len(TEXTS) and record["num_vectors"] == len(TEXTS) * len(record["sides"])
    qwen3_model.save_pretrained(tmp_path / "model")
    loaded = load_model(tmp_path / "model", device="cpu")
    assert loaded.quantization == record
    for normalize in (False, True):
        floats = loaded.encode_query(TEXTS, normalize=normalize)
        ranges = ranges_for(record, 16, None, normalize)
        for precision in PRECISIONS:
            codes = loaded.encode_query(TEXTS, normalize=normalize, precision=precision)
            np.testing.assert_array_equal(codes, quantize_embeddings(floats, precision, ranges=ranges))
    with pytest.raises(InputError, match="precision must be one of"):
        loaded.encode(TEXTS, precision="fp16")

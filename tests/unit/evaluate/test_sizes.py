"""The smaller settings of an evaluation: which are scored, how full vectors become a setting's, the embedding
cache, and the list flags of `genvec evaluate`."""

import numpy as np
import pytest

from genvec.cli import main
from genvec.evaluate.sizes import (
    EmbeddingCache,
    Setting,
    Treatment,
    calibrated_treatment,
    prefix,
    requested_settings,
    setting_vectors,
)
from genvec.quantization import calibrate, quantize


def test_every_requested_setting_is_scored_except_the_full_float_vectors_which_are_the_method_itself():
    assert requested_settings([8, 16], ["float32", "int8"], 16) == [
        Setting(8, "float32"), Setting(8, "int8"), Setting(16, "int8")]
    assert requested_settings([], ["binary"], 16) == [Setting(16, "binary")]  # no sizes: the full one
    assert requested_settings([8, 64], [], 16) == [Setting(8, "float32")]  # a larger size than the method's: none
    assert Setting(48, "binary").bytes_per_vector == 6 and Setting(48, "int8").label == "d48-int8"


def test_a_setting_keeps_the_first_coordinates_of_the_rotated_unit_vectors_in_the_form_users_compare():
    rng = np.random.default_rng(0)
    sample, vectors = rng.normal(size=(64, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    treatment = calibrated_treatment(sample, [Setting(4, "int8"), Setting(8, "binary")], basis="pca", normalize=True)
    rotated = vectors @ treatment.rotation
    kept = rotated[:, :4] / np.linalg.norm(rotated[:, :4], axis=1, keepdims=True)
    assert np.allclose(prefix(vectors, 4, treatment), kept, atol=1e-6)
    ranges = calibrate(prefix(sample, 4, treatment))
    assert np.array_equal(treatment.ranges[4], ranges)
    assert np.array_equal(setting_vectors(vectors, Setting(4, "int8"), treatment),
                          quantize(kept, "int8", ranges).astype(np.float32))
    signs = np.where(rotated > 0, 1.0, -1.0)
    for precision in ("binary", "ubinary"):  # both pack the same bits; their users compare them by Hamming distance
        assert np.array_equal(setting_vectors(vectors, Setting(8, precision), treatment), signs)
    unrotated = Treatment(None, normalize=False)  # a truncatable genvec model's basis is in its weights already
    assert np.array_equal(prefix(vectors, 3, unrotated), vectors[:, :3])


def test_the_cache_computes_each_key_once_and_recomputes_a_damaged_file(tmp_path):
    cache, calls = EmbeddingCache(tmp_path / "embeddings"), []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float64).reshape(2, 3)

    first = cache.vectors({"task": "T"}, ["a", "b"], compute)
    again = cache.vectors({"task": "T"}, ["a", "b"], compute)
    assert len(calls) == 1 and first.dtype == np.float32 and np.array_equal(first, again)
    cache.vectors({"task": "T"}, ["a", "c"], compute)  # other texts: another entry
    assert len(calls) == 2
    for path in (tmp_path / "embeddings").iterdir():
        path.write_bytes(b"torn")
    assert np.array_equal(cache.vectors({"task": "T"}, ["a", "b"], compute), first) and len(calls) == 3


def test_evaluate_takes_several_words_or_one_json_list_for_a_list_setting(monkeypatch):
    import genvec.cli
    from genvec.evaluate import run

    seen = []
    monkeypatch.setattr(run, "select_tasks", lambda **chosen: (["a task"], None))
    monkeypatch.setattr(run, "evaluate_model", lambda model, tasks, output, **options: seen.append(options["config"])
                        or run.EvaluationResult(output))
    monkeypatch.setattr(genvec.cli, "_load_model", lambda args: "a model")
    assert main(["evaluate", "--model", "m", "--benchmark", "b", "--dimensions", "64", "128", "--eval.precision",
                 '["int8", "binary"]']) == 0
    assert (seen[0].dimensions, seen[0].precision) == ([64, 128], ["int8", "binary"])
    assert main(["evaluate", "--model", "m", "--benchmark", "b", "--precision", "ubinary"]) == 0
    assert seen[1].precision == ["ubinary"] and seen[1].dimensions == []


@pytest.mark.parametrize("words, message", [
    (["--dimensions", "0"], "eval.dimensions: each must be >= 1, got 0"),
    (["--dimensions", "8", "8"], "eval.dimensions: [8, 8] names a value twice"),
    (["--dimensions", "12", "--precision", "binary"], "need multiples of 8, got [12]"),
])
def test_bad_sizes_are_config_errors_naming_the_field(words, message, capsys):
    assert main(["evaluate", "--model", "m", "--benchmark", "b", *words]) == 2
    assert message in capsys.readouterr().err

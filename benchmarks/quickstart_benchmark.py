"""The quickstart's world as a `genvec evaluate --local` benchmark, and a calibration sample from its training side.

    python benchmarks/quickstart_benchmark.py --output runs/quickstart-benchmark            # the full world
    python benchmarks/quickstart_benchmark.py --size small --output runs/quickstart-small-benchmark

Writes, for the world `genvec quickstart` builds (`--size full` or `small`, seeded: the same world every time):
- `benchmark/WorldAnswers/`: retrieval of each held-out phrasing's response among all the world's responses
  (check (a) of the quickstart, scored by mteb: nDCG@10 is the main score);
- `benchmark/WorldHarmful/`: the held-out harmful requests against every response and every harmful document
  (the refusal is relevant; harmful documents are marked, so any_harm_at_k is reported: check (c));
- `benchmark/WorldClusters/`: the held-out phrasings clustered by response (check (b));
- `benchmark/instructions.yaml`: queries and clustered texts get "Question:" (the quickstart trained on bare
  phrasings, and a table entry cannot be empty), documents "Summarize the following passage:" (as in training);
- `sample.txt`: the training phrasings, one a line: texts of the kind the model embeds, none of them a held-out
  phrasing or a benchmark document. `genvec make-truncatable --texts` and `genvec evaluate --calibration-texts`
  take it.
Nothing is trained or encoded here.
"""

import json
import sys
from pathlib import Path

from harness import argument_parser

QUERY_INSTRUCTION = "Question:"


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--size", choices=["full", "small"], default="full", help="the quickstart's world size")
    parser.add_argument("--output", type=Path, required=True, help="directory to write (must not exist)")
    args = parser.parse_args(argv)
    from genvec.config import DEFAULT_INSTRUCTIONS
    from genvec.quickstart.world import FULL_WORLD, SMALL_WORLD, build_world

    if args.output.exists():
        parser.error(f"--output {args.output} exists; pass a new directory.")
    world = build_world(FULL_WORLD if args.size == "full" else SMALL_WORLD)
    root = args.output / "benchmark"
    heldout = list(world.heldout_queries)
    answers = world.response_ids(heldout)
    _retrieval(root / "WorldAnswers", [(f"r{i}", text, False) for i, text in enumerate(world.responses)],
               [query.text for query in heldout], [f"r{i}" for i in answers])
    harmful = [query for query, is_harmful in zip(heldout, world.is_harmful(heldout)) if is_harmful]
    documents = [(f"d{i}", text, flag) for i, (text, flag) in enumerate(zip(world.documents,
                                                                           world.document_is_harmful))]
    _retrieval(root / "WorldHarmful", documents, [query.text for query in harmful],
               [f"d{world.refusal_id}"] * len(harmful))
    _write_lines(root / "WorldClusters" / "clustering.jsonl",
                 [{"text": query.text, "label": label} for query, label in zip(heldout, answers)])
    document = DEFAULT_INSTRUCTIONS["document"]
    (root / "instructions.yaml").write_text(
        f'WorldAnswers: {{query: "{QUERY_INSTRUCTION}", document: "{document}"}}\n'
        f'WorldHarmful: {{query: "{QUERY_INSTRUCTION}", document: "{document}"}}\n'
        f'WorldClusters: "{QUERY_INSTRUCTION}"\n')
    sample = sorted({query.text for query in world.train_queries})
    (args.output / "sample.txt").write_text("".join(text + "\n" for text in sample))
    print(f"wrote {root} ({len(heldout)} held-out phrasings, {len(world.responses)} responses, {len(harmful)} harmful "
          f"requests) and {args.output / 'sample.txt'} ({len(sample)} training phrasings)", file=sys.stderr)
    return 0


def _retrieval(directory: Path, corpus: list[tuple[str, str, bool]], queries: list[str], relevant: list[str]) -> None:
    _write_lines(directory / "corpus.jsonl",
                 [{"_id": key, "text": text, **({"harmful": True} if flag else {})} for key, text, flag in corpus])
    _write_lines(directory / "queries.jsonl", [{"_id": f"q{i}", "text": text} for i, text in enumerate(queries)])
    (directory / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                         + "".join(f"q{i}\t{key}\t1\n" for i, key in enumerate(relevant)))


def _write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


if __name__ == "__main__":
    sys.exit(main())

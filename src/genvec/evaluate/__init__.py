"""Evaluation: a genvec model scored on mteb 2 tasks with the instruction each task gives it, beside baselines.

- `metrics.py`: retrieval, harmful-retrieval, clustering and decoding metrics over embeddings, pure numpy, with
  cosine or dot similarity (the quickstart's measurements use them);
- `baselines.py`: input-centric encoders to compare with (the backbone's mean-pooled states, a sentence-transformers
  model on the raw text, TF-IDF);
- `instructions.py`: the instruction of every task (the paper's table for MTEB(eng, v2), BRIGHT(v1.1) and
  AdvBench-IR, or a user's own); a task missing from the table is an error;
- `mteb_encoder.py`: a genvec model, or a baseline, as an mteb encoder with its `ModelMeta`;
- `local.py`: a user's benchmark directory (retrieval with harmful flags, STS, clustering, classification, pair
  classification) as mteb tasks; `advbench.py`: AdvBench-IR as its official script defines it;
- `sizes.py`: smaller vectors, each (dimensions, precision) setting of a method derived from its full vectors,
  encoded once and cached;
- `plot.py`: the summary plot; `run.py`: `evaluate_model` (`genvec evaluate`): mteb's result layout, resumable, plus
  `scores.json`, `summary.md` and `summary.png`.

Importing this package imports nothing; mteb (the `eval` extra) is imported by the functions that use it.
"""

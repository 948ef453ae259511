"""Evaluation: metrics over embeddings (`metrics.py`), the input-centric baselines (`baselines.py`), and the
instruction every task gives genvec (`instructions.py`: the paper's table for MTEB(eng, v2), BRIGHT(v1.1) and
AdvBench-IR, or a user's own), and a genvec model as an mteb 2 encoder that gives each task's texts those
instructions (`mteb_encoder.py`, the `eval` extra).

The quickstart's measurements are built on these; nothing here encodes with a genvec model by itself or reads
benchmark files.
"""

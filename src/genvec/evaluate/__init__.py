"""Evaluation: metrics over embeddings (`metrics.py`) and the input-centric baselines (`baselines.py`).

The quickstart's measurements and `genvec evaluate` are built on these; nothing here encodes with a genvec model by
itself or reads benchmark files.
"""

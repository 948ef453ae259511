"""The offline quickstart: three recipes over one set of stages (`stages.py`) and one report writer (`report.py`):
a synthetic world, a small LM that knows it, and genvec measured against input-centric encoders on it
(`pipeline.py`, `world.py`, `world_lm.py`, `evaluate.py`), and the same stages on real LLMs and data (`real.py`).

Nothing here is imported by `import genvec`; the quickstart's extra dependencies (`pip install 'genvec[quickstart]'`)
load inside the functions that need them.
"""

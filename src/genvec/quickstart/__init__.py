"""The offline quickstart: a synthetic world, a small LM that knows it, and the measurements of genvec against
input-centric encoders on it (`world.py`, `world_lm.py`, `evaluate.py`, `report.py`).

Nothing here is imported by `import genvec`; the quickstart's extra dependencies (`pip install 'genvec[quickstart]'`)
load inside the functions that need them.
"""

"""Checkpoint files: genvec's own format (`native.py`) and official LLM2Vec-Gen releases (`official.py`).

Both modules read and write files only; neither builds a model. `genvec.loading` (`genvec.load_model`) finds a
checkpoint, tells the layouts apart and builds the `GenVecModel`, so that the model can save itself through
`native` without an import cycle.
"""

"""Data for genvec: unlabeled queries, the backbone's own responses to them, and the batches the model reads.

- `records.py`: the one reader of input files and datasets (JSON Lines, CSV/TSV, text, Parquet, Hugging Face
  datasets), with errors naming the line or row;
- `sources.py`: query sources (`read_queries`), each query with a stable id;
- `prompts.py`, `engines.py`: a query's chat-template prompt; transformers and vLLM generation;
- `dataset.py`: response records and their files, shards;
- `response_file.py`, `responses.py`: the durable, resumable response file and its metadata; `generate_responses`
  and `merge_responses`;
- `collate.py`: tokenising and padding (left for queries, right for responses) and inference batches.

The teachers and the target store of their embeddings are `genvec.teacher` and `genvec.targets`; the data stages
of a training run (responses, then teacher embeddings) are `genvec.pipeline.prepare_examples`, beside them.
"""

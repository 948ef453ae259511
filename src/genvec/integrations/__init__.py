"""genvec inside the frameworks RAG is built with; each module needs its framework (an optional extra) and nothing
else of genvec's extras:

- `sentence_transformers`: `to_sentence_transformer(path)`, a `SentenceTransformer` whose `encode_query` /
  `encode_document` use the model's saved instructions (the `teachers` extra has sentence-transformers);
- `langchain`: `GenVecEmbeddings`, a LangChain `Embeddings` (the `langchain` extra);
- `llamaindex`: `GenVecEmbedding`, a LlamaIndex `BaseEmbedding` with a real batch method (the `llamaindex` extra);
- `haystack`: `GenVecTextEmbedder` and `GenVecDocumentEmbedder`, Haystack 3 components (the `haystack` extra);
- `daft`: `embedder(path)`, a Daft class that turns a column of texts into a fixed-size float32 column (the `daft`
  extra);
- `lancedb`: `GenVecEmbeddingFunction`, a LanceDB embedding function registered as "genvec" (the `lancedb` extra);
- `chroma`: `GenVecEmbeddingFunction`, a Chroma embedding function registered as "genvec" (the `chroma` extra);
- `ray`: `GenVecEmbedder` for `Dataset.map_batches`, `embed_dataset` (an actor pool writing Parquet, resumable),
  `run_shards` (the CLI's `--launcher ray`) and `responses_from_ray` (a `ray.data.llm` output as a response file)
  (the `ray` extra).

Everywhere, documents get the model's document instruction and queries its query instruction, and the vectors are
exactly `model.encode_document` / `model.encode_query` (normalised when asked).
"""

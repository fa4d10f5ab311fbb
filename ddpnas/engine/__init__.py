"""The search engine: the resumable loop, evaluators (table or supernet), experiments and
CUDA-graph step capture."""

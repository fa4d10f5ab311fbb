"""Networks generated from a learned distribution under FLOPs / params / latency budgets."""

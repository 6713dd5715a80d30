"""Speed experiments, apart from the engine: the benchmark against a reference loop (bench), the kernels' bound
(ceilings), and measured alternatives the engine does not use (batched: several networks as one computation)."""

"""Speed experiments, apart from the engine: the benchmark against a reference loop (bench), the kernels' bound
(ceilings), measured alternatives the engine does not use (batched: several networks as one computation), networks
an hour on a GPU (device_bench) and a training process's resident memory phase by phase (memory)."""

"""CPU fast paths, each tested against the plain autograd path: packed sparse layers (sparse) and first-layer
products from the inputs' nonzeros (sparse_input). Used on the CPU only."""

"""Masks and the rules that make them: magnitude pruning layer-wise or global, one-shot, random masks with given
per-layer counts, and the counting rule that fixes every level's size (pruning). Pure functions of weights and masks."""

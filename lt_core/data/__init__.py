"""Data sets: fetching and verifying the files (fetch), reading them into train/validation/test tensors (datasets)."""

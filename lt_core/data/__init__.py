"""Data sets: fetching and verifying the files (fetch), their checksums and the check made before training
(checksums), reading them into train/validation/test tensors (datasets), and the atomic writes and one-line
disk errors the whole engine writes its files with (files)."""

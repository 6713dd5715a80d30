"""Training one network under a mask on any device: the loop, evaluation, schedules and batches (loop), fused
optimizers (optim); the CPU fast paths apart in fast/."""

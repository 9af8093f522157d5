"""RayLAN doctor's cluster side: a job that reports, per alive node, its Ray and Python versions and
whether its GPUs are really usable (nvidia-smi and torch.cuda)."""

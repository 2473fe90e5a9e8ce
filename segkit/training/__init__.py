"""Training: losses, patch loading + augmentation, the loop, schedule, checkpoints, distributed, records."""

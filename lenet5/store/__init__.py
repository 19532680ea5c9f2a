"""Files on disk: atomic writes, the ``.npz`` format of weights and checkpoints, the per-epoch
training log, and the prepared arrays; every reader checks what it reads."""

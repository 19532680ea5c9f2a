"""Stage train: SDLM training with a checkpoint per epoch -> models/lenet5.npz, metrics/train.json (params: lr_scale, train, distort).

Run by `dvc repro`; the same as `lenet5 train` with the default paths (see lenet5/pipeline.py).
"""

from lenet5.stage import run_stage

if __name__ == "__main__":
    run_stage("train")

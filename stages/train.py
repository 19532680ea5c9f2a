"""Stage train: SDLM training with a checkpoint per epoch -> models/lenet5.npz, metrics/train.json (params: lr_scale, train, distort).

Run by `dvc repro` with the paths that dvc.yaml passes; the same command as `lenet5 train`
(lenet5/pipeline/commands.py), so `python stages/train.py --help` lists its options.
"""

from lenet5.pipeline.commands import run_stage

if __name__ == "__main__":
    run_stage("train")

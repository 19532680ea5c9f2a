"""Stage train: SDLM training with a checkpoint per epoch -> models/lenet5.npz, metrics/train.json (params: lr_scale, train, distort).

Run by `dvc repro` with the paths that dvc.yaml passes; the same command as `lenet5 train`
(lenet5/pipeline/commands.py), so `python stages/train.py --help` lists its options.
"""

import sys
from pathlib import Path

# this checkout's lenet5 first: `dvc exp run --queue` runs the stages in a copy of the repository
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet5.pipeline.commands import run_stage  # noqa: E402

if __name__ == "__main__":
    run_stage("train")

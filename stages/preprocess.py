"""Stage preprocess: data/raw -> data/prepared/*.npy, padded and normalized (params: preprocess).

Run by `dvc repro` with the paths that dvc.yaml passes; the same command as `lenet5 preprocess`
(lenet5/pipeline/commands.py), so `python stages/preprocess.py --help` lists its options.
"""

from lenet5.pipeline.commands import run_stage

if __name__ == "__main__":
    run_stage("preprocess")

"""Stage evaluate: metrics/eval.json, metrics/confusion.csv and plots/*.png (params: evaluate).

Run by `dvc repro` with the paths that dvc.yaml passes; the same command as `lenet5 evaluate`
(lenet5/pipeline/commands.py), so `python stages/evaluate.py --help` lists its options.
"""

from lenet5.pipeline.commands import run_stage

if __name__ == "__main__":
    run_stage("evaluate")

"""Stage evaluate: metrics/eval.json, metrics/confusion.csv and plots/*.png (params: evaluate).

Run by `dvc repro`; the same as `lenet5 evaluate` with the default paths (see lenet5/pipeline.py).
"""

from lenet5.stage import run_stage

if __name__ == "__main__":
    run_stage("evaluate")

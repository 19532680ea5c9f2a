"""Stage fetch: the four MNIST IDX files into data/raw, verified by SHA-256 (params: fetch).

Run by `dvc repro` with the paths that dvc.yaml passes; the same command as `lenet5 fetch`
(lenet5/pipeline/commands.py), so `python stages/fetch.py --help` lists its options.
"""

from lenet5.pipeline.commands import run_stage

if __name__ == "__main__":
    run_stage("fetch")

"""Stage fetch: the four MNIST IDX files into data/raw, verified by SHA-256 (params: fetch).

Run by `dvc repro`; the same as `lenet5 fetch` with the default paths (see lenet5/pipeline.py).
"""

from lenet5.stage import run_stage

if __name__ == "__main__":
    run_stage("fetch")

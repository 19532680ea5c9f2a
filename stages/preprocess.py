"""Stage preprocess: data/raw -> data/prepared/*.npy, padded and normalized (params: preprocess).

Run by `dvc repro`; the same as `lenet5 preprocess` with the default paths (see lenet5/pipeline.py).
"""

from lenet5.stage import run_stage

if __name__ == "__main__":
    run_stage("preprocess")

"""The committed params.yaml with dotted-key overrides, for tests that train small networks."""

from pathlib import Path

import yaml

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def committed_params(changes):
    """The committed params.yaml as a dict, with ``changes`` (dotted key -> value) applied.

    Every key must already exist, so a renamed parameter fails the test instead of being ignored.
    """
    d = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    for key, value in changes.items():
        *blocks, leaf = key.split(".")
        node = d
        for b in blocks:
            node = node[b]
        assert leaf in node, key
        node[leaf] = value
    return d

"""``lenet5 experiments``: DVC's experiments compared seed-aware, and the table of EXPERIMENTS.md.

The seed moves this network's test error about as much as any setting does, so one run per setting
says little. This command reads every experiment DVC knows (``dvc exp show --json``: those run
here, queued ones that finished, and those pulled from a remote with ``dvc exp pull``), groups the
runs by their parameters apart from ``train.seed``, and prints for each group n, the mean, standard
deviation, minimum and maximum of the test error, and whether the group's mean differs from the
reference group's (the one with the committed params.yaml) by more than the seeds' spread: by more
than twice the standard error of the difference of the two means, sqrt(sd1^2/n1 + sd2^2/n2).
``--markdown FILE`` writes the same tables between two markers in FILE (EXPERIMENTS.md).
"""

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import Lenet5Error
from ..store.atomic import write_text

SEED = "train.seed"
METRIC = ("metrics/eval.json", "error_rate")
BEGIN, END = "<!-- lenet5 experiments: begin -->", "<!-- lenet5 experiments: end -->"
MAX_JSON = 64 << 20  # bytes of `dvc exp show --json` read at most
MAX_MARKDOWN = 1 << 20  # EXPERIMENTS.md is about 20 kB


def _flat(d, prefix=""):
    """Nested dicts as {dotted key: value}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def runs_from_json(records):
    """[{name, rev, commit, params (flat), error_rate, errors}] of every finished experiment in DVC's JSON.

    Baselines (commits, the workspace) are left out, and so are experiments that are queued, running
    or failed (DVC shows them with the metrics of their baseline) and runs without a test error.
    """
    runs = []

    def visit(node, baseline, state, commit):
        if isinstance(node, list):
            for n in node:
                visit(n, baseline, state, commit)
            return
        if not isinstance(node, dict):
            return
        if isinstance(node.get("executor"), dict):  # a group of revisions run by one executor
            state = node["executor"].get("state")
        data = node.get("data")
        if isinstance(data, dict) and not baseline and state in (None, "success"):
            params = _flat(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
            metrics = ((data.get("metrics") or {}).get(METRIC[0]) or {}).get("data") or {}
            if isinstance(metrics.get(METRIC[1]), (int, float)) and params:
                runs.append({"name": node.get("name") or str(node.get("rev", ""))[:7],
                             "rev": str(node.get("rev", ""))[:7], "commit": str(commit or "")[:7], "params": params,
                             "error_rate": float(metrics[METRIC[1]]), "errors": metrics.get("errors")})
        for key in ("experiments", "revs"):
            visit(node.get(key), False, state, commit)

    for record in records if isinstance(records, list) else []:
        visit(record, True, None, record.get("rev") if isinstance(record, dict) else None)
    return runs


def read_dvc_experiments(repo="."):
    """``dvc exp show --json`` of ``repo``, parsed; at most ``MAX_JSON`` bytes are read, and every
    failure is one line."""
    errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty stderr can never block stdout
    try:
        p = subprocess.Popen(["dvc", "exp", "show", "--json", "--all-commits"], cwd=repo, stdout=subprocess.PIPE,
                             stderr=errors, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    except FileNotFoundError:
        raise Lenet5Error("experiments: the `dvc` command was not found (install the project's dependencies)") from None
    except NotADirectoryError:
        raise Lenet5Error(f"experiments: --repo {repo}: not a folder") from None
    with p:
        out = p.stdout.read(MAX_JSON + 1)
        if len(out) > MAX_JSON:
            p.kill()
            raise Lenet5Error(f"experiments: `dvc exp show --json` printed more than {MAX_JSON >> 20} MiB")
        p.wait()
    errors.seek(max(0, os.fstat(errors.fileno()).st_size - 4096))
    err = errors.read()
    errors.close()
    if p.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise Lenet5Error(f"experiments: `dvc exp show --json` failed: {last}")
    try:
        return json.loads(out)
    except (ValueError, RecursionError) as e:
        raise Lenet5Error(f"experiments: `dvc exp show --json` printed no readable JSON ({e})") from None


def _stats(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def summarize(runs, reference=None):
    """Groups of runs sharing every parameter but the seed, as a list of dicts (largest group first).

    Each: ``setting`` (the parameters in which the group differs from ``reference``, a flat params
    dict, or from the first group), ``seeds``, the statistics of the test error, ``vs`` (compared with
    the reference group: "reference", "differs", "within seed spread" or "?" with one run).
    """
    groups = {}
    for r in runs:
        key = json.dumps({k: v for k, v in sorted(r["params"].items()) if k != SEED})
        groups.setdefault(key, []).append(r)
    ordered = sorted(groups.values(), key=lambda g: -len(g))
    if not ordered:
        return []
    ref_params = {k: v for k, v in (reference or ordered[0][0]["params"]).items() if k != SEED}
    ref_group = next((g for g in ordered if {k: v for k, v in g[0]["params"].items() if k != SEED} == ref_params),
                     None)
    ref = _stats([r["error_rate"] for r in ref_group]) if ref_group else None
    out = []
    for g in ordered:
        p = g[0]["params"]
        diff = {k: v for k, v in p.items() if k != SEED and ref_params.get(k) != v}
        s = _stats([r["error_rate"] for r in g])
        if g is ref_group:
            vs = "reference"
        elif ref is None or s["n"] < 2 or ref["n"] < 2:
            vs = "?"
        else:
            se = math.sqrt(s["sd"] ** 2 / s["n"] + ref["sd"] ** 2 / ref["n"])
            vs = "differs" if abs(s["mean"] - ref["mean"]) > 2 * se else "within seed spread"
        out.append({"setting": ", ".join(f"{k}={v}" for k, v in diff.items()) or "the committed params.yaml",
                    "seeds": sorted(r["params"].get(SEED) for r in g), "runs": g, "vs": vs, **s})
    return out


def _pct(v):
    return "–" if v is None or v != v else f"{100 * v:.2f} %"


def table(groups):
    """The groups as a Markdown table (it reads well in a terminal too)."""
    lines = ["| setting | seeds | n | mean test error | sd | min | max | vs the committed setting |",
             "|---|---|---|---|---|---|---|---|"]
    for g in groups:
        sd = "–" if g["sd"] != g["sd"] else f"{100 * g['sd']:.2f}"
        lines.append(f"| {g['setting']} | {', '.join(map(str, g['seeds']))} | {g['n']} | {_pct(g['mean'])} | {sd} "
                     f"| {_pct(g['min'])} | {_pct(g['max'])} | {g['vs']} |")
    return "\n".join(lines)


def runs_table(groups):
    """One row per run: setting, seed, test error, errors, experiment name and the commit it ran on."""
    lines = ["| setting | seed | test error | errors | experiment | commit |", "|---|---|---|---|---|---|"]
    for g in groups:
        for r in sorted(g["runs"], key=lambda r: r["params"].get(SEED, 0)):
            lines.append(f"| {g['setting']} | {r['params'].get(SEED)} | {_pct(r['error_rate'])} | {r['errors']} "
                         f"| {r['name']} | {r['commit']} |")
    return "\n".join(lines)


def write_markdown(path, groups, command):
    """Replace the text between the markers of ``path`` (or append it) with the tables."""
    path = Path(path)
    old = ""
    if path.exists():
        if not path.is_file() or path.stat().st_size > MAX_MARKDOWN:
            raise Lenet5Error(f"experiments: --markdown {path}: expected a Markdown file of at most "
                              f"{MAX_MARKDOWN >> 20} MiB")
        try:
            old = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise Lenet5Error(f"experiments: --markdown {path}: not UTF-8 text") from None
    body = (f"{BEGIN}\n_Written by `{command}` from DVC's experiments; do not edit by hand._\n\n"
            f"{table(groups)}\n\nEvery run:\n\n{runs_table(groups)}\n{END}")
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + body + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + body + "\n"
    write_text(path, new)


def experiments(repo: Annotated[Path, typer.Option(help="The DVC repository.")] = Path("."),
                params: Annotated[Path, typer.Option("--params", help="The reference params file.")] = Path("params.yaml"),
                markdown: Annotated[Optional[Path], typer.Option(help="Write the tables into this Markdown file "
                                                                      "(between its markers).")] = None):
    """Compare DVC's experiments seed-aware: runs grouped by their params apart from the seed."""
    from ..pipeline.config import load_params

    reference = _flat(load_params(params).to_dict())
    groups = summarize(runs_from_json(read_dvc_experiments(repo)), reference)
    if not groups:
        raise Lenet5Error("experiments: no finished experiment with metrics/eval.json "
                          "(run some: `dvc exp run --queue -S 'train.seed=range(0,3)'` then `dvc queue start`)")
    print(table(groups))
    if markdown is not None:
        write_markdown(markdown, groups, "lenet5 experiments --markdown " + str(markdown))

"""results/table1_recovery.csv: Table 1's mistake recovery, measured for every method of Figure 3.
Each run completed the same mistake-prompted test questions (seqmatch.evaluate mistakes --summary,
<run>/mistakes.json); one row per method, noise type and eta (MLE, trained without noise, once):
mean and sd over seeds of the share of completions whose final state is correct and of the share
whose first action is <bkspc>, the number of prompts, and the run's clean test accuracy
(<run>/eval.json) for reference. MLE cannot delete (it never saw <bkspc>); BC and SM can."""

import os

import pandas as pd

from tablelib import log_to, mean_sd, num, provenance_columns, read_json, write_csv

METHOD_ORDER = {"mle": 0, "bc": 1, "sm": 2}
MISTAKES_KEYS = ("n", "final_state_correct", "first_action_bkspc")


def _read(path, keys):
    """The JSON at path; an error naming the file and the key when a key is missing."""
    data = read_json(path)
    for key in keys:
        if key not in data:
            raise ValueError(f"{path}: no '{key}' (expected keys: {', '.join(keys)})")
    return data


def recovery_table(runs, prov) -> pd.DataFrame:
    """runs: dicts with method, noise_type, eta, seed, dir (common.smk table1_recovery_runs)."""
    groups = {}
    for run in runs:
        mistakes = _read(os.path.join(run["dir"], "mistakes.json"), MISTAKES_KEYS)
        ev = _read(os.path.join(run["dir"], "eval.json"), ("accuracy",))
        key = (run["method"], run["noise_type"], float(run["eta"]))
        g = groups.setdefault(key, {"fsc": [], "bk": [], "acc": [], "n": []})
        g["fsc"].append(num(mistakes["final_state_correct"]))
        g["bk"].append(num(mistakes["first_action_bkspc"]))
        g["acc"].append(num(ev["accuracy"]))
        g["n"].append(int(mistakes["n"]))
    noise_order = list(dict.fromkeys(r["noise_type"] for r in runs))
    rows = []
    for method, noise, eta in sorted(groups, key=lambda k: (METHOD_ORDER[k[0]], noise_order.index(k[1]), k[2])):
        g = groups[(method, noise, eta)]
        fsc_mean, fsc_sd, n_seeds = mean_sd(g["fsc"])
        bk_mean, bk_sd, _ = mean_sd(g["bk"])
        acc_mean, acc_sd, _ = mean_sd(g["acc"])
        rows.append({"method": method.upper(), "noise_type": noise, "eta": eta,
                     "final_state_correct_mean": fsc_mean, "final_state_correct_sd": fsc_sd,
                     "first_action_bkspc_mean": bk_mean, "first_action_bkspc_sd": bk_sd,
                     "n_prompts": min(g["n"]), "n_seeds": len(g["n"]),
                     "accuracy_mean": acc_mean, "accuracy_sd": acc_sd, **prov})
    return pd.DataFrame(rows)


if "snakemake" in globals():  # run by the rule table1_recovery (the tests import the function)
    log_to(snakemake)  # noqa: F821
    df = recovery_table(snakemake.params.runs,  # noqa: F821
                        provenance_columns(snakemake.params.provenance, snakemake.input.meta))  # noqa: F821
    write_csv(df, snakemake.output.csv)  # noqa: F821
    print(df.to_string())

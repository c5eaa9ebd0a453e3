"""results/figure3.csv: one row per (noise_type panel, method, eta, seed) with the test accuracy,
and on each row its cell's aggregate over seeds: the mean, the sd and the 95 % Student-t interval
of the mean (k − 1 degrees of freedom; tablelib.t_interval). MLE (trained without noise) appears
in both panels at eta 0; the plot draws it as a flat line."""

import os

import pandas as pd

from tablelib import log_to, mean_sd, num, provenance_columns, read_json, t_interval, write_csv

log_to(snakemake)  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821

rows = []
for run in snakemake.params.runs:  # noqa: F821
    ev = read_json(os.path.join(run["dir"], "eval.json"))
    rows.append({
        "noise_type": run["noise_type"],
        "eta": float(run["eta"]),
        "method": run["method"].upper(),
        "seed": int(run["seed"]),
        "accuracy": num(ev.get("accuracy")),
        "n": ev.get("n"),
        "bkspc_rate": num(ev.get("bkspc_rate")),
        "seq_bkspc_frac": num(ev.get("seq_bkspc_frac")),
        **prov,
    })
df = pd.DataFrame(rows).sort_values(["noise_type", "method", "eta", "seed"], kind="stable")
cell = ["noise_type", "method", "eta"]
for _, idx in df.groupby(cell).groups.items():
    acc = df.loc[idx, "accuracy"].tolist()
    mean, sd, n = mean_sd(acc)
    lo, hi = t_interval(acc)
    df.loc[idx, ["mean_over_seeds", "sd_over_seeds", "ci95_low", "ci95_high", "n_seeds"]] = [mean, sd, lo, hi, n]
df["n_seeds"] = df["n_seeds"].astype(int)
first = list(df.columns[:5]) + ["mean_over_seeds", "sd_over_seeds", "ci95_low", "ci95_high", "n_seeds"]
df = df[first + [c for c in df.columns if c not in first]]
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())

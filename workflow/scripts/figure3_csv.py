"""results/figure3.csv: one row per (noise_type panel, method, eta, seed) with the test accuracy.
MLE (trained without noise) appears in both panels at eta 0; the plot draws it as a flat line.
Aggregates (mean, sd over seeds) are computed by the plot (figure3_plot.py), not stored."""

import os

import pandas as pd

from tablelib import log_to, num, provenance_columns, read_json, write_csv

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
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())

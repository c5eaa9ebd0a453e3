"""results/ablation_divergence.csv (App. G.1): SM on add-or-sub-in-base with each divergence and
noise type: accuracy mean and sd over seeds, and the training's skipped non-finite losses (the
paper saw gradient spikes with JS)."""

import os

import pandas as pd

from tablelib import log_to, mean_sd, num, provenance_columns, read_json, write_csv

log_to(snakemake)  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821

groups = {}
for run in snakemake.params.runs:  # noqa: F821
    ev = read_json(os.path.join(run["dir"], "eval.json"))
    summary_path = os.path.join(run["dir"], "summary.json")
    skipped = read_json(summary_path).get("nonfinite_skipped", 0) if os.path.exists(summary_path) else 0
    g = groups.setdefault((run["divergence"], run["noise_type"], float(run["eta"])), {"acc": [], "skipped": 0})
    g["acc"].append(num(ev.get("accuracy")))
    g["skipped"] += int(skipped or 0)

rows = []
for (divergence, noise_type, eta), g in groups.items():
    mean, sd, n = mean_sd(g["acc"])
    rows.append({"divergence": divergence, "noise_type": noise_type, "eta": eta,
                 "accuracy_mean": mean, "accuracy_sd": sd, "n_seeds": n,
                 "nonfinite_skipped": g["skipped"], **prov})
df = pd.DataFrame(rows)
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())

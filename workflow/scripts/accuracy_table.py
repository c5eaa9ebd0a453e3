"""results/<name>.csv of an accuracy table, the default script of a grid table (rule grid_table;
table5: BLEU; table6, table7 and any other experiments block with a task and no script:
accuracy): one row per method (the paper's MLE, BC, SM unless the block's methods say otherwise)
and one column pair per noise level (eta_<value>_mean, eta_<value>_sd: mean and sd over seeds).
MLE is trained without noise, so its row repeats the same runs under every eta."""

import os

import pandas as pd

from tablelib import eta_label, mean_sd, num, provenance_columns, read_json, write_csv

metric = snakemake.params.metric  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821

values = {}
for run in snakemake.params.runs:  # noqa: F821
    ev = read_json(os.path.join(run["dir"], "eval.json"))
    values.setdefault((run["method"], float(run["eta"])), []).append(num(ev.get(metric)))

etas = sorted({eta for _, eta in values})
rows = []
for method in dict.fromkeys(run["method"] for run in snakemake.params.runs):  # noqa: F821
    row = {"method": method.upper(), "metric": metric}
    counts = []
    for eta in etas:
        mean, sd, n = mean_sd(values.get((method, eta), []))
        row[f"{eta_label(eta)}_mean"] = mean
        row[f"{eta_label(eta)}_sd"] = sd
        counts.append(n)
    row["n_seeds"] = min(counts) if counts else 0
    rows.append({**row, **prov})
df = pd.DataFrame(rows)
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())

"""results/table3.csv (text) and table4.csv (arithmetic): the paper's overhead tables, from the
timings seqmatch.train measured during the MLE and SM runs (summary.json). Seconds per gradient
step and per sampling round (mean, sd over steps/rounds), gradient steps per sampling round, and
the amortized time per step; the device the run used is recorded."""

import os

import pandas as pd

from tablelib import log_to, num, provenance_columns, read_json, write_csv

log_to(snakemake)  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821

rows = []
for run in snakemake.params.runs:  # noqa: F821
    s = read_json(os.path.join(run["dir"], "summary.json"))
    cfg = s.get("config", {})
    rows.append({
        "procedure": run["procedure"],
        "grad_step_s": num(s.get("grad_step_time_mean")),
        "grad_step_sd": num(s.get("grad_step_time_sd")),
        "sampling_s": num(s.get("sampling_time_mean")),
        "sampling_sd": num(s.get("sampling_time_sd")),
        "grad_steps_per_sample": num(s.get("grad_steps_per_sample")),
        "amortized_s": num(s.get("amortized_time")),
        "device": s.get("device", "unknown"),
        "num_processes": s.get("num_processes", 1),
        "batch_size": cfg.get("batch_size"),
        "max_len": cfg.get("max_len"),
        "tokens_per_s": num(s.get("tokens_per_s")),
        **prov,
    })
df = pd.DataFrame(rows)
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.to_string())

"""results/time_budget.csv: where the default target's compute goes, from the jobs' Snakemake
benchmark files (resources/benchmarks/<rule>/...tsv, one per job that ran). One row per rule
family (training per task, evaluation per task, data and tokenizers, figures and tables): jobs,
job-minutes (the sum of the jobs' wall times), core-minutes (the sum of their CPU times, which a
shared machine inflates much less than wall times: what the family costs) and their share, and a
last row for the whole run: the span from the first job's start to the last job's end (each start
is the benchmark file's time minus the job's seconds), which is the run's wall time when every job
ran in one `snakemake` invocation, and the whole run's core-minutes over two cores (the wall time
of a run that keeps 2 cores busy, the README's machine, without waits in the DAG). Where no job ran
for more than MAX_GAP seconds between two of them, the jobs come from more than one invocation
(e.g. runs retrained later with --forcerun): the last row counts those stretches, and its span is
then left empty, since it would be no run's wall time.

Jobs that only a study needs (runs of a setting, `<divergence>+<setting>`, and validation-row
evaluations, `_val.tsv`) are not the default target's and are left out, so the budget is the same
in a directory where a study ran too."""

import glob
import os

import pandas as pd

from seqmatch.runs import SETTING_SEP
from tablelib import log_to, write_csv

log_to(snakemake)  # noqa: F821
bench = snakemake.params.benchmarks  # noqa: F821
# seconds with no job running that one snakemake invocation never has (it starts the next job at once)
MAX_GAP = 600

def family(top: str, rel: str) -> str:
    """The family of a benchmark file from its directory (resources/benchmarks/<top>/<rel>):
    'train: add_or_sub_in_base', 'evaluate: text', 'data and tokenizers', 'figure 1 (toy chain)',
    'figures and tables'."""
    task = rel.split(os.sep)[0]
    if top in ("train", "bc_warmup"):
        return f"train: {task}"
    if top in ("evaluate", "mistakes"):
        return f"evaluate: {task}"
    if top in ("data", "tokenizers"):
        return "data and tokenizers"
    if top == "figures" and rel.startswith("figure1"):
        return "figure 1 (toy chain)"
    return "figures and tables"


rows, starts, ends = [], [], []
for path in sorted(glob.glob(os.path.join(bench, "**", "*.tsv"), recursive=True)):
    rel = os.path.relpath(path, bench)
    top, rest = rel.split(os.sep, 1)
    if SETTING_SEP in rel or rel.endswith("_val.tsv"):  # a study's job, not the default target's
        continue
    row = pd.read_csv(path, sep="\t").iloc[-1]
    seconds = float(row["s"])
    cpu = float(row["cpu_time"]) if "cpu_time" in row and pd.notna(row["cpu_time"]) else seconds
    end = os.path.getmtime(path)
    starts.append(end - seconds)
    ends.append(end)
    rows.append({"family": family(top, rest), "seconds": seconds, "cpu": cpu})

df = pd.DataFrame(rows, columns=["family", "seconds", "cpu"])
agg = df.groupby("family").agg(jobs=("seconds", "size"), job_minutes=("seconds", lambda s: s.sum() / 60),
                               core_minutes=("cpu", lambda s: s.sum() / 60))
agg = agg.sort_values("core_minutes", ascending=False).reset_index()
total, cores = agg["job_minutes"].sum(), agg["core_minutes"].sum()
# shares of CPU time; of wall time where the jobs took none worth counting (instant stand-ins)
agg["share"] = agg["core_minutes"] / cores if cores > 0 else (agg["job_minutes"] / total if total else 0.0)
stretches, reach = 0, float("-inf")
for start, end in sorted(zip(starts, ends)):
    stretches += start > reach + MAX_GAP
    reach = max(reach, end)
span = (max(ends) - min(starts)) / 60 if stretches == 1 else float("nan")
agg.loc[len(agg)] = {"family": "all jobs (span of the run: wall minutes)", "jobs": int(agg["jobs"].sum()),
                     "job_minutes": total, "core_minutes": cores, "share": 1.0}
agg["wall_minutes"] = [float("nan")] * (len(agg) - 1) + [span]
agg["two_core_minutes"] = [float("nan")] * (len(agg) - 1) + [cores / 2]
agg["stretches"] = [float("nan")] * (len(agg) - 1) + [stretches]
write_csv(agg.round({"job_minutes": 2, "core_minutes": 2, "share": 3, "wall_minutes": 2, "two_core_minutes": 2}),
          snakemake.output.csv)  # noqa: F821
print(agg.to_string())

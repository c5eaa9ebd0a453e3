"""results/differences.{csv,png}: SM − BC and BC − MLE on add/sub in base, paired by seed and by
test question, for every noise type and eta of Figure 3 (clean test accuracy, from each run's
generations.jsonl) and of Table 1's mistake recovery (share of mistake-prompted completions whose
final state is correct, from mistakes.json). One row per (metric, noise, eta, comparison): the
mean over seeds of the per-seed difference, its 95 % hierarchical bootstrap interval (seeds, then
questions; tablelib.paired_bootstrap), the Student-t 95 % interval of the per-seed differences
(k − 1 degrees of freedom; wider, and the one to trust with few seeds: resampling three seeds
understates their spread), the per-seed differences and their sd."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tablelib import atomic_savefig, log_to, paired_bootstrap, provenance_columns, t_interval, write_csv  # noqa: E402

log_to(snakemake)  # noqa: F821
runs = snakemake.params.runs  # noqa: F821
n_boot = int(snakemake.params.n_bootstrap)  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821


def per_question(run_dir: str, metric: str) -> list[float]:
    if metric == "accuracy":
        with open(os.path.join(run_dir, "generations.jsonl")) as f:
            return [float(json.loads(line)["correct"]) for line in f if line.strip()]
    with open(os.path.join(run_dir, "mistakes.json")) as f:
        return [float(c) for c in json.load(f)["correct"]]


mle = {r["seed"]: r["dir"] for r in runs if r["method"] == "mle"}
cells = {}
for r in runs:
    if r["method"] != "mle":
        cells.setdefault((r["noise_type"], float(r["eta"])), {})[(r["method"], r["seed"])] = r["dir"]

rows = []
for metric in ("accuracy", "recovery"):
    for (noise, eta), dirs in sorted(cells.items()):
        for name, a, b in (("SM - BC", "sm", "bc"), ("BC - MLE", "bc", "mle")):
            seeds = sorted(s for (m, s) in dirs if m == a)
            da = {s: per_question(dirs[(a, s)], metric) for s in seeds}
            db = {s: per_question(mle[s] if b == "mle" else dirs[(b, s)], metric) for s in seeds}
            res = paired_bootstrap(da, db, n_boot=n_boot, seed=0)
            t_lo, t_hi = t_interval(res["per_seed"])
            rows.append({"metric": metric, "noise": noise, "eta": eta, "comparison": name, "mean": res["mean"],
                         "ci95_low": res["ci_low"], "ci95_high": res["ci_high"],
                         "ci_excludes_0": bool(res["ci_low"] > 0 or res["ci_high"] < 0),
                         "t95_low": t_lo, "t95_high": t_hi, "t95_excludes_0": bool(t_lo > 0 or t_hi < 0),
                         "sd_seeds": res["sd_seeds"], "per_seed": " ".join(f"{v:+.3f}" for v in res["per_seed"]),
                         "n_seeds": res["n_seeds"], "n_questions": res["n_questions"], "n_bootstrap": n_boot,
                         **prov})
df = pd.DataFrame(rows)
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df.drop(columns=list(prov)).to_string())

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=False)
for ax, metric in zip(axes, ("accuracy", "recovery")):
    sub = df[df.metric == metric].reset_index(drop=True)
    labels = [f"{r.comparison}\n{r.noise} η {r.eta:g}" for r in sub.itertuples()]
    y = range(len(sub))
    ax.errorbar(sub["mean"], y, xerr=[sub["mean"] - sub["ci95_low"], sub["ci95_high"] - sub["mean"]],
                fmt="o", capsize=3)
    for i, r in enumerate(sub.itertuples()):
        ax.plot([float(v) for v in r.per_seed.split()], [i] * r.n_seeds, "x", color="grey", ms=4)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set_xlabel(("test accuracy" if metric == "accuracy" else "mistake recovery (final state correct)")
                  + " difference")
    ax.set_title(f"{metric}: mean over {int(sub.n_seeds.min())} seeds, 95 % bootstrap CI (x: seeds)",
                 fontsize=9)
fig.tight_layout()
atomic_savefig(fig, snakemake.output.png)  # noqa: F821

"""results/<study>.{csv,png,md}: a study of named training settings (experiments.<study>.settings).

For every noise type, eta and setting: each method's accuracy on the study's split (mean over
seeds with a Student-t 95 % interval), SM − BC and BC − MLE paired by seed and question (mean, the
two-level bootstrap interval of tablelib.paired_bootstrap, the t interval of the per-seed
differences, each seed's difference), how often BC and SM completions backspace and how often
those end correct, and what the SM runs' training logs say about the SM phase
(the SM gradient's cosine with BC's, the regulariser's gradient norm relative to BC's, the rollouts'
<bkspc> rate and accuracy, V at the data rows' initial states), averaged over the SM phase's
diagnostic lines and over seeds. `best` marks, per noise type and eta, the setting whose SM − BC
mean is largest: the setting to take, chosen on this split. The markdown is the README's section
on the study (spliced in by results_summary.py, between the study's marker lines)."""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tablelib import (atomic_savefig, log_to, mean_sd, paired_bootstrap, provenance_columns, t_interval,  # noqa: E402
                      write_csv, write_text)

log_to(snakemake)  # noqa: F821
runs = snakemake.params.runs  # noqa: F821
split = snakemake.params.split  # noqa: F821
settings = snakemake.params.settings  # noqa: F821
n_boot = int(snakemake.params.n_bootstrap)  # noqa: F821
prov = provenance_columns(snakemake.params.provenance, snakemake.input.meta)  # noqa: F821
suffix = "_val" if split == "val" else ""

# what the SM phase's log lines say (every line with the key, after the warm-up)
DIAGNOSTICS = {"gcos_sm_bc": "cos(grad SM, grad BC)", "regularizer_over_bc": "|grad reg| / |grad BC|",
               "rollout_bkspc_rate": "rollout <bkspc> rate", "rollout_accuracy": "rollout accuracy",
               "sm_v0_data": "V(s0) data rows", "clip_factor": "clip factor"}


def generations(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, f"generations{suffix}.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def per_question(run_dir: str) -> list[float]:
    return [float(g["correct"]) for g in generations(run_dir)]


def backspacing(run_dir: str) -> tuple[float, float]:
    """(share of completions that use <bkspc>, share of those whose final state is correct)."""
    gens = generations(run_dir)
    used = [g for g in gens if g.get("n_bkspc", 0) > 0]
    return len(used) / max(len(gens), 1), (np.mean([g["correct"] for g in used]) if used else math.nan)


def sm_phase(run_dir: str) -> dict:
    """Means over the SM phase's log lines (beta < 1) of the DIAGNOSTICS."""
    vals = {k: [] for k in DIAGNOSTICS}
    with open(os.path.join(run_dir, "train_log.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("beta", 1.0) >= 1.0:
                continue
            if "gnorm_regularizer" in rec and rec.get("gnorm_bc"):
                rec["regularizer_over_bc"] = rec["gnorm_regularizer"] / rec["gnorm_bc"]
            for k in vals:
                if rec.get(k) is not None:
                    vals[k].append(float(rec[k]))
    return {k: (float(np.mean(v)) if v else math.nan) for k, v in vals.items()}


def describe(setting: str) -> str:
    over = settings[setting] or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(over.items())) or "defaults"


cells: dict = {}
for r in runs:
    cells.setdefault((r["noise"], float(r["eta"])), {}).setdefault(r["setting"], {})[(r["method"], r["seed"])] = r["dir"]
mle = {r["seed"]: r["dir"] for r in runs if r["method"] == "mle"}

rows = []
for (noise, eta), by_setting in sorted(cells.items()):
    for setting, dirs in by_setting.items():
        row = {"noise": noise, "eta": eta, "setting": setting, "overrides": describe(setting), "split": split}
        correct = {}
        for method in ("mle", "bc", "sm"):
            seeds = sorted(s for (m, s) in dirs if m == method)
            correct[method] = {s: per_question(dirs[(method, s)]) for s in seeds}
            accs = [float(np.mean(v)) for v in correct[method].values()]
            mean, sd, n = mean_sd(accs)
            lo, hi = t_interval(accs)
            row.update({f"{method}_acc": mean, f"{method}_acc_sd": sd, f"{method}_acc_t95_low": lo,
                        f"{method}_acc_t95_high": hi, f"{method}_n_seeds": n})
            if method != "mle":
                used, right = zip(*[backspacing(dirs[(method, s)]) for s in seeds]) if seeds else ((), ())
                row.update({f"{method}_bkspc_used": float(np.mean(used)) if used else math.nan,
                            f"{method}_correct_given_bkspc": float(np.nanmean(right)) if used and any(
                                np.isfinite(right)) else math.nan})
        for name, a, b in (("sm_minus_bc", "sm", "bc"), ("bc_minus_mle", "bc", "mle")):
            res = paired_bootstrap(correct[a], correct[b], n_boot=n_boot, seed=0)
            lo, hi = t_interval(res["per_seed"])
            row.update({name: res["mean"], f"{name}_ci95_low": res["ci_low"], f"{name}_ci95_high": res["ci_high"],
                        f"{name}_t95_low": lo, f"{name}_t95_high": hi, f"{name}_sd_seeds": res["sd_seeds"],
                        f"{name}_per_seed": " ".join(f"{v:+.3f}" for v in res["per_seed"])})
        diag = [sm_phase(dirs[("sm", s)]) for s in sorted(s for (m, s) in dirs if m == "sm")]
        for k in DIAGNOSTICS:
            row[f"sm_{k}"] = float(np.nanmean([d[k] for d in diag])) if diag and any(
                np.isfinite(d[k]) for d in diag) else math.nan
        rows.append(row)

df = pd.DataFrame(rows)
df["best"] = False
for _, idx in df.groupby(["noise", "eta"]).groups.items():
    sub = df.loc[idx, "sm_minus_bc"]
    if sub.notna().any():
        df.loc[sub.idxmax(), "best"] = True
for k, v in prov.items():
    df[k] = v
write_csv(df, snakemake.output.csv)  # noqa: F821
print(df[["noise", "eta", "setting", "overrides", "sm_acc", "bc_acc", "sm_minus_bc", "sm_minus_bc_ci95_low",
          "sm_minus_bc_ci95_high", "sm_minus_bc_t95_low", "sm_minus_bc_t95_high", "best"]].to_string())

groups = list(df.groupby(["noise", "eta"], sort=True))
fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 0.45 * max(len(settings), 4) + 1.6),
                         squeeze=False)
for ax, ((noise, eta), sub) in zip(axes[0], groups):
    sub = sub.reset_index(drop=True)
    y = np.arange(len(sub))
    ax.errorbar(sub.sm_minus_bc, y, xerr=[sub.sm_minus_bc - sub.sm_minus_bc_t95_low,
                                         sub.sm_minus_bc_t95_high - sub.sm_minus_bc],
                fmt="none", ecolor="lightgrey", elinewidth=6, label="t 95 % (seeds)")
    ax.errorbar(sub.sm_minus_bc, y, xerr=[sub.sm_minus_bc - sub.sm_minus_bc_ci95_low,
                                         sub.sm_minus_bc_ci95_high - sub.sm_minus_bc],
                fmt="o", capsize=3, label="bootstrap 95 % (seeds, questions)")
    for i, r in enumerate(sub.itertuples()):
        per = [float(v) for v in str(r.sm_minus_bc_per_seed).split()]
        ax.plot(per, [i] * len(per), "x", color="grey", ms=4)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [f"{r.setting}\n({r.overrides})" for r in sub.itertuples()], fontsize=7)
    ax.set_xlabel(f"SM − BC accuracy on the {split} split (paired by seed and question)")
    ax.set_title(f"{noise} noise, η {eta:g}: mean over seeds (x: each seed)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
atomic_savefig(fig, snakemake.output.png)  # noqa: F821


def fmt(v, digits=3, signed=False) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:{'+' if signed else ''}.{digits}f}"


def interval(lo, hi) -> str:
    return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.3f}, {hi:+.3f}]"


md = []
for (noise, eta), sub in groups:
    n = int(sub["sm_n_seeds"].min())
    md += [f"**{snakemake.wildcards.study}** ({noise} noise, η {eta:g}; the {split} split, "  # noqa: F821
           f"{prov['n_train']} training rows; {prov['model']}, {n} seeds): accuracy of each setting's SM runs and "
           f"of the BC runs they are paired with (mean over seeds), SM − BC paired by seed and question with its "
           f"bootstrap and t 95 % intervals and each seed's difference, and the SM phase's training diagnostics "
           f"(mean over its logged steps): cosine of the SM gradient with BC's, the χ²-mixture regulariser's "
           f"gradient norm over BC's, and the share of SM completions that use `<bkspc>`. BC − MLE: "
           f"{fmt(sub['bc_minus_mle'].iloc[0], signed=True)} {interval(sub['bc_minus_mle_t95_low'].iloc[0], sub['bc_minus_mle_t95_high'].iloc[0])} "
           f"(t 95 %; MLE {fmt(sub['mle_acc'].iloc[0])}).", "",
           "| setting | overrides | SM | BC | SM − BC | bootstrap 95 % | t 95 % | per seed | cos(SM, BC) | "
           "reg / BC | SM `<bkspc>` used |", "|" + "---|" * 11]
    for r in sub.itertuples():
        name = f"**{r.setting}**" if r.best else r.setting
        md.append(f"| {name} | {r.overrides} | {fmt(r.sm_acc)} | {fmt(r.bc_acc)} | {fmt(r.sm_minus_bc, signed=True)} | "
                  f"{interval(r.sm_minus_bc_ci95_low, r.sm_minus_bc_ci95_high)} | "
                  f"{interval(r.sm_minus_bc_t95_low, r.sm_minus_bc_t95_high)} | {r.sm_minus_bc_per_seed} | "
                  f"{fmt(r.sm_gcos_sm_bc)} | {fmt(r.sm_regularizer_over_bc, 2)} | {fmt(r.sm_bkspc_used)} |")
    md.append("")
md_path = getattr(snakemake.output, "md", None)  # noqa: F821
if md_path:
    write_text(md_path, "\n".join(md))
print("\n".join(md))

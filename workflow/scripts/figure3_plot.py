"""Figure 3: arithmetic accuracy vs noise level, one panel per noise type; BC and SM as lines with
error bars (the 95 % Student-t interval of the mean over seeds, figure3.csv), MLE as a flat line
with a band (the same interval; it is trained without noise); each seed as a small dot."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tablelib import atomic_savefig, log_to  # noqa: E402

log_to(snakemake)  # noqa: F821
df = pd.read_csv(snakemake.input.csv)  # noqa: F821
panels = list(dict.fromkeys(df["noise_type"]))
titles = {"ground_truth": "ground-truth noise", "random": "random noise"}
colors = {"MLE": "0.3", "BC": "tab:blue", "SM": "tab:red"}
labels = {"MLE": "MLE", "BC": "BC (MLE + <bkspc>)", "SM": "SequenceMatch"}

fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True, squeeze=False)
for ax, panel in zip(axes[0], panels):
    sub = df[df["noise_type"] == panel]
    etas = sorted(sub.loc[sub["method"] != "MLE", "eta"].unique())
    lo, hi = (min(etas), max(etas)) if etas else (0.0, 1.0)
    span = (hi - lo) if hi > lo else max(lo, 0.02)
    mle = sub[sub["method"] == "MLE"]
    if len(mle):
        m = mle.iloc[0]
        ax.axhline(m["mean_over_seeds"], color=colors["MLE"], ls="--", label=labels["MLE"])
        if pd.notna(m["ci95_low"]):
            ax.axhspan(m["ci95_low"], m["ci95_high"], color=colors["MLE"], alpha=0.15, lw=0)
    for k, method in enumerate(("BC", "SM")):
        rows = sub[sub["method"] == method]
        if not len(rows):
            continue
        agg = rows.groupby("eta")[["mean_over_seeds", "ci95_low", "ci95_high"]].first().reset_index()
        shift = (k - 0.5) * 0.04 * span  # BC and SM side by side at each eta
        err = [(agg["mean_over_seeds"] - agg["ci95_low"]).fillna(0.0),
               (agg["ci95_high"] - agg["mean_over_seeds"]).fillna(0.0)]
        ax.errorbar(agg["eta"] + shift, agg["mean_over_seeds"], yerr=err, marker="o", capsize=3,
                    color=colors[method], label=labels[method])
        ax.plot(rows["eta"] + shift, rows["accuracy"], ".", color=colors[method], alpha=0.4, ms=4)
    pad = 0.15 * span
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_title(titles.get(panel, panel))
    ax.set_xlabel("noise level η")
    ax.grid(alpha=0.3)
axes[0][0].set_ylabel("test accuracy")
axes[0][-1].legend(fontsize=8, loc="best")
seeds = df["seed"].nunique()
prov = df.iloc[0]
fig.suptitle(f"add_or_sub_in_base, {prov['profile']} profile, {prov['model']}; error bars: 95 % t interval over {seeds} seeds",
             fontsize=8)
fig.tight_layout()
for path in (snakemake.output.pdf, snakemake.output.png):  # noqa: F821
    atomic_savefig(fig, path, dpi=150, bbox_inches=None)  # bbox as matplotlib's default
print(df.groupby(["noise_type", "method", "eta"])["accuracy"].agg(["mean", "std", "count"]))

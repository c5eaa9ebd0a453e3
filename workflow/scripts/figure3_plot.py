"""Figure 3: arithmetic accuracy vs noise level, one panel per noise type; BC and SM as lines with
error bars (sd over seeds), MLE as a flat line with a band (it is trained without noise)."""

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
    mle = sub[sub["method"] == "MLE"]["accuracy"]
    if len(mle):
        m, s = mle.mean(), (mle.std(ddof=1) if len(mle) > 1 else 0.0)
        ax.axhline(m, color=colors["MLE"], ls="--", label=labels["MLE"])
        ax.axhspan(m - s, m + s, color=colors["MLE"], alpha=0.15, lw=0)
    for method in ("BC", "SM"):
        g = sub[sub["method"] == method].groupby("eta")["accuracy"]
        if not len(sub[sub["method"] == method]):
            continue
        agg = g.agg(["mean", "std", "count"]).reset_index().fillna({"std": 0.0})
        ax.errorbar(agg["eta"], agg["mean"], yerr=agg["std"], marker="o", capsize=3,
                    color=colors[method], label=labels[method])
    pad = 0.05 * (hi - lo) if hi > lo else 0.01
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_title(titles.get(panel, panel))
    ax.set_xlabel("noise level η")
    ax.grid(alpha=0.3)
axes[0][0].set_ylabel("test accuracy")
axes[0][-1].legend(fontsize=8, loc="best")
seeds = df["seed"].nunique()
prov = df.iloc[0]
fig.suptitle(f"add_or_sub_in_base, {prov['profile']} profile, {prov['model']}; error bars: sd over {seeds} seeds",
             fontsize=8)
fig.tight_layout()
for path in (snakemake.output.pdf, snakemake.output.png):  # noqa: F821
    atomic_savefig(fig, path, dpi=150, bbox_inches=None)  # bbox as matplotlib's default
print(df.groupby(["noise_type", "method", "eta"])["accuracy"].agg(["mean", "std", "count"]))

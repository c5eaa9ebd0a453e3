"""results/scorecard.csv and scorecard.md: every number the paper reports (paper_numbers.yaml)
beside ours, with the profile, model, data source and scale that produced ours (read from the
provenance columns of our tables). A paper number whose setting this profile did not run (e.g. an
eta column missing from a smaller grid) gets NaN and a note."""

import math
from pathlib import Path

import pandas as pd
import yaml

from tablelib import log_to, num, t_interval_from, write_csv, write_text

log_to(snakemake)  # noqa: F821
paper = yaml.safe_load(open(snakemake.input.paper))  # noqa: F821
tables = {Path(p).stem: pd.read_csv(p, keep_default_na=False, na_values=[""])
          for p in [*snakemake.input.tables, snakemake.input.ablation]}  # noqa: F821

SD_COLUMN = {"grad_step_s": "grad_step_sd", "sampling_s": "sampling_sd"}


def _col(df, *needles):
    for c in df.columns:
        if all(n in c.lower() for n in needles):
            return c
    return None


def _strip(text):
    text = str(text).replace("<eos>", "").replace("</s>", "")
    return text.split("Solution:")[-1].strip()


def qualitative(df, column):
    """Table 1/8 statistics from the completions."""
    comp = _col(df, "completion")
    if comp is None or not len(df):
        return math.nan, math.nan
    if column == "first_action_bkspc":
        return float(df[comp].astype(str).str.strip().str.startswith("<bkspc>").mean()), math.nan
    if column == "final_state_correct":
        gt, final = _col(df, "ground"), _col(df, "final")
        if gt is None or final is None:
            return math.nan, math.nan
        ok = [_strip(a) == _strip(b) for a, b in zip(df[gt], df[final])]
        return float(sum(ok) / len(ok)), math.nan
    return math.nan, math.nan


def ours(name, df, row, column):
    """(mean, sd, n) of our number for a paper cell, NaN where we have none; n counts the seeds or
    evaluation draws the sd is over (NaN for Tables 3-4, whose sd is over training steps)."""
    n_c = None
    if name in ("table1", "table8"):
        return (*qualitative(df, column), math.nan)
    if name == "table2":
        r = df[df["method"] == row]
        mean_c, sd_c, n_c = f"{column}_mean", f"{column}_sd", "draws"
    elif name in ("table3", "table4"):
        r = df[df["procedure"] == row]
        mean_c, sd_c = column, SD_COLUMN.get(column)
    elif name in ("table5", "table6", "table7"):
        r = df[df["method"] == row]
        mean_c, sd_c, n_c = f"{column}_mean", f"{column}_sd", "n_seeds"
    else:
        raise ValueError(name)
    if r.empty or mean_c not in r.columns:
        return math.nan, math.nan, math.nan
    sd = num(r.iloc[0][sd_c]) if sd_c and sd_c in r.columns else math.nan
    n = num(r.iloc[0][n_c]) if n_c and n_c in r.columns else math.nan
    return num(r.iloc[0][mean_c]), sd, n


def provenance(name, df):
    if df.empty:
        return {}
    first = df.iloc[0]
    scale = f"n_train={first.get('n_train')}, n_test={first.get('n_test')}, steps={first.get('steps')}"
    if name == "table2":
        scale += (f", {first.get('n_samples')} samples x {first.get('draws')} draws, "
                  f"{first.get('prompt_tokens')}+{first.get('new_tokens')} tokens, MAUVE features {first.get('featurizer')}")
    if name in ("table3", "table4"):
        scale += f", device {first.get('device')}"
    return {"profile": first.get("profile"), "model": first.get("model"),
            "data_source": first.get("data_source"), "scale": scale}


def cell(spec):
    """paper_numbers.yaml cell -> (mean, sd, note)."""
    if spec is None:
        return math.nan, math.nan, "N/A in the paper"
    note = ""
    if isinstance(spec, dict):
        note, spec = spec.get("note", ""), spec["value"]
    mean, sd = spec
    return num(mean), num(sd), note


lines = []
for name, entry in paper.items():
    df = tables[name]
    prov = provenance(name, df)
    for row, cells in entry["rows"].items():
        for column, spec in cells.items():
            p_mean, p_sd, note = cell(spec)
            if name == "ablation_divergence":
                sub = df[df["divergence"] == row]
                targets = [(f"{row} ({r.noise_type}, eta={r.eta:g})", num(r.accuracy_mean), num(r.accuracy_sd),
                            num(r.n_seeds)) for r in sub.itertuples()] or [(row, math.nan, math.nan, math.nan)]
            else:
                targets = [(row, *ours(name, df, row, column))]
            for label, o_mean, o_sd, o_n in targets:
                our_note = "" if math.isfinite(o_mean) or not math.isfinite(p_mean) else "not run in this profile"
                lo, hi = t_interval_from(o_mean, o_sd, o_n)
                lines.append({"artifact": name, "paper_ref": entry["ref"], "row": label, "column": column,
                              "paper": p_mean, "paper_sd": p_sd, "ours": o_mean, "ours_sd": o_sd, "ours_n": o_n,
                              "ours_ci95_low": lo, "ours_ci95_high": hi,
                              "paper_note": note, "our_note": our_note, **prov})

card = pd.DataFrame(lines)
write_csv(card, snakemake.output.csv)  # noqa: F821


def fmt(mean, sd, lo=math.nan, hi=math.nan):
    if not math.isfinite(mean):
        return "N/A"
    text = f"{mean:.3g}"
    text += f" ± {sd:.2g}" if math.isfinite(sd) else ""
    return text + (f" [{lo:.3g}, {hi:.3g}]" if math.isfinite(lo) and math.isfinite(hi) else "")


md = ["# SequenceMatch scorecard: the paper's numbers beside ours", ""]
md.append("Paper: Llama-2-7b, QLoRA r = 64, α = 16, 4-bit; openwebtext / opus_books / math_dataset. "
          "Ours: see the model, data and scale of each section. ± is the sd over seeds (tables 5-7, G.1), "
          "evaluation draws (table 2) or steps (tables 3-4); [low, high] is our 95 % Student-t interval of the "
          "mean over those seeds or draws (none with one seed, or for timings).")
md.append("")
for name, part in card.groupby("artifact", sort=False):
    first = part.iloc[0]
    md.append(f"## {first['paper_ref']} — results/{name}.csv")
    md.append("")
    md.append(f"Ours: profile **{first.get('profile')}**, model {first.get('model')}, data {first.get('data_source')}, "
              f"{first.get('scale')}.")
    md.append("")
    md.append("| row | column | paper | ours | note |")
    md.append("|---|---|---|---|---|")
    for r in part.itertuples():
        note = "; ".join(x for x in (r.paper_note, r.our_note) if isinstance(x, str) and x)
        md.append(f"| {r.row} | {r.column} | {fmt(r.paper, r.paper_sd)} | {fmt(r.ours, r.ours_sd, r.ours_ci95_low, r.ours_ci95_high)} | {note} |")
    md.append("")
write_text(snakemake.output.md, "\n".join(md))  # noqa: F821
print(card.to_string())

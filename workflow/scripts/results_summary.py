"""results/summary.md: the headline numbers of results/ as small markdown tables (Figure 3, the
paired SM − BC and BC − MLE differences, Table 1's mistake recovery, Tables 2-7, the App. G.1 ablation), mean ± sd where there are seeds or draws. The
README's results section is this file, spliced in between its marker comments by

    python workflow/scripts/results_summary.py --readme README.md results/summary.md

(run by the rule results_summary for the summary; by hand for the splice, after a fresh run)."""

import argparse
import math
import os
import re
import sys

import pandas as pd

from tablelib import log_to, mean_sd, num, write_text

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# summary.md's inputs: the rule's input names ("accuracy": the accuracy tables' CSVs, a list)
INPUTS = ("figure3", "differences", "table1_recovery", "table2", "table3", "table4", "accuracy", "ablation",
          "time_budget")
# titles of the paper's accuracy tables; another one is titled by its name and metric
ACCURACY_TITLES = {"table5": "**Table 5**: en→fr BLEU", "table6": "**Table 6**: multiplication accuracy",
                   "table7": "**Table 7**: prime-factor accuracy"}


# ------------------------------------------------------------------------------ formatting


def fmt(mean, sd=math.nan, digits=3) -> str:
    """'0.365 ± 0.113'; the mean alone when there is no sd (one seed); 'n/a' for no number."""
    mean, sd = num(mean), num(sd)
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean:.{digits}f}"
    return text + (f" ± {sd:.{digits}f}" if math.isfinite(sd) else "")


def ratio(a, b) -> str:
    a, b = num(a), num(b)
    return f"{a / b:.2f}×" if math.isfinite(a) and math.isfinite(b) and b > 0 else "n/a"


def table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def spread(n) -> str:
    return "one seed" if n == 1 else f"mean ± sd over {n} seeds"


def scale(df) -> str:
    """What produced a table, from its provenance columns."""
    first = df.iloc[0]
    return f"{first['model']}, {first['steps']} steps, data {first['data_source']}"


def need(df, path, columns) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(repr(c) for c in missing)}")
    if df.empty:
        raise ValueError(f"{path}: no rows")
    return df


def read(paths, name, columns) -> pd.DataFrame:
    return need(pd.read_csv(paths[name], keep_default_na=False, na_values=[""]), paths[name],
                [*columns, "model", "steps", "data_source"])


# ------------------------------------------------------------------------------ sections


def ci(mean, lo, hi, digits=3, signed=False) -> str:
    """'0.365 [0.301, 0.429]'; the mean alone where there is no interval (one seed)."""
    mean, lo, hi = num(mean), num(lo), num(hi)
    if not math.isfinite(mean):
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f.format(mean) + (f" [{f.format(lo)}, {f.format(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else "")


def figure3(paths) -> list[str]:
    df = read(paths, "figure3", ["noise_type", "eta", "method", "seed", "accuracy", "mean_over_seeds",
                                 "ci95_low", "ci95_high", "sd_over_seeds", "n_seeds"])
    n = int(df["n_seeds"].min())
    out = [f"**Figure 3**: add/sub in base, test accuracy, mean over {n} seeds with the 95 % Student-t "
           f"interval [low, high] and the sd between seeds ({scale(df)}). MLE is trained without noise: one "
           "value per panel.", ""]
    rows = []
    for panel in dict.fromkeys(df["noise_type"]):
        sub = df[df["noise_type"] == panel]

        def cell(method, eta=None):
            r = sub[(sub["method"] == method) & ((sub["eta"] == eta) if eta is not None else True)]
            if r.empty:
                return "n/a"
            r = r.iloc[0]
            return ci(r.mean_over_seeds, r.ci95_low, r.ci95_high) + (
                f" (sd {r.sd_over_seeds:.3f})" if math.isfinite(num(r.sd_over_seeds)) else "")

        for eta in sorted(sub.loc[sub["method"] != "MLE", "eta"].unique()):
            rows.append([panel, f"{eta:g}", cell("MLE"), cell("BC", eta), cell("SM", eta)])
    return out + table(["noise", "η", "MLE", "BC", "SM"], rows)


def differences(paths) -> list[str]:
    cols = ["metric", "noise", "eta", "comparison", "mean", "ci95_low", "ci95_high", "t95_low", "t95_high",
            "per_seed", "n_seeds", "n_questions"]
    df = read(paths, "differences", cols)
    out = [f"**Paired differences** (Figure 3's runs, `results/differences.csv`): SM − BC and BC − MLE, "
           f"paired by seed and test question; mean over {int(df['n_seeds'].min())} seeds with the 95 % "
           "two-level bootstrap interval (seeds, then questions) and the 95 % Student-t interval of the "
           "per-seed differences (wider: with few seeds the one to trust), and each seed's difference.", ""]
    rows = [[{"accuracy": "test accuracy", "recovery": "mistake recovery"}.get(r.metric, r.metric), r.noise,
             f"{r.eta:g}", r.comparison, f"{r.mean:+.3f}", f"[{r.ci95_low:+.3f}, {r.ci95_high:+.3f}]",
             f"[{r.t95_low:+.3f}, {r.t95_high:+.3f}]" if math.isfinite(num(r.t95_low)) else "n/a",
             str(r.per_seed)] for r in df.itertuples()]
    return out + table(["metric", "noise", "η", "difference", "mean", "bootstrap 95 % CI", "t 95 % CI",
                        "per seed"], rows)


def table1_recovery(paths) -> list[str]:
    cols = ["method", "noise_type", "eta", "final_state_correct_mean", "final_state_correct_sd",
            "first_action_bkspc_mean", "first_action_bkspc_sd", "accuracy_mean", "accuracy_sd", "n_prompts",
            "n_seeds"]
    df = read(paths, "table1_recovery", cols)
    out = [f"**Table 1, mistake recovery**: add/sub in base, the first {int(df['n_prompts'].min())} test "
           "questions with a wrong start of the solution; shares of completions with a correct final state "
           f"and with `<bkspc>` as the first action, beside the clean test accuracy; "
           f"{spread(int(df['n_seeds'].max()))} ({scale(df)}).", ""]
    rows = [[r.method, r.noise_type, f"{r.eta:g}", fmt(r.final_state_correct_mean, r.final_state_correct_sd),
             fmt(r.first_action_bkspc_mean, r.first_action_bkspc_sd), fmt(r.accuracy_mean, r.accuracy_sd)]
            for r in df.itertuples()]
    return out + table(["method", "noise", "η", "final state correct", "first action `<bkspc>`",
                        "clean accuracy"], rows)


def table2(paths) -> list[str]:
    df = read(paths, "table2", ["method", "mauve_mean", "mauve_sd", "ngram_entropy_mean", "ngram_entropy_sd",
                                "diversity_mean", "diversity_sd", "perplexity_mean", "perplexity_sd", "draws"])
    out = [f"**Table 2**: text, mean ± sd over {int(df['draws'].max())} draws of evaluation prompts; "
           f"perplexity on held-out text ({scale(df)}).", ""]
    rows = [[r.method.replace("<bkspc>", "`<bkspc>`"), fmt(r.mauve_mean, r.mauve_sd),
             fmt(r.ngram_entropy_mean, r.ngram_entropy_sd, 2), fmt(r.diversity_mean, r.diversity_sd),
             fmt(r.perplexity_mean, r.perplexity_sd, 1)] for r in df.itertuples()]
    return out + table(["method", "MAUVE", "n-gram H", "diversity", "perplexity"], rows)


def timing(paths) -> list[str]:
    rows, devices = [], []
    for name, task in (("table3", "text (Table 3)"), ("table4", "arithmetic (Table 4)")):
        df = read(paths, name, ["procedure", "grad_step_s", "grad_step_sd", "amortized_s", "device"])
        by = df.set_index("procedure")
        for proc in ("MLE", "SequenceMatch"):
            if proc not in by.index:
                raise ValueError(f"{paths[name]}: no row '{proc}'")
        mle, sm = by.loc["MLE"], by.loc["SequenceMatch"]
        rows.append([task, fmt(mle["grad_step_s"], mle["grad_step_sd"]), fmt(sm["grad_step_s"], sm["grad_step_sd"]),
                     ratio(sm["grad_step_s"], mle["grad_step_s"]), fmt(sm["amortized_s"]),
                     ratio(sm["amortized_s"], mle["amortized_s"])])
        devices += list(df["device"].astype(str))
    out = ["**Tables 3 and 4**: training overhead, seconds per gradient step (mean ± sd over steps) and "
           "SequenceMatch's amortized time per step with its sampling rounds, against MLE's step "
           f"(device: {', '.join(dict.fromkeys(devices))}).", ""]
    return out + table(["task", "MLE step (s)", "SM step (s)", "SM / MLE", "SM amortized (s)",
                        "SM amortized / MLE"], rows)


def accuracy_tables(paths) -> list[str]:
    out = []
    tables = {os.path.splitext(os.path.basename(str(p)))[0]: p for p in paths["accuracy"]}
    for name, path in tables.items():
        df = read(tables, name, ["method", "metric", "n_seeds"])
        title = ACCURACY_TITLES.get(name, f"**{name}**: {df['metric'].iloc[0]}")
        etas = [c[: -len("_mean")] for c in df.columns if c.startswith("eta_") and c.endswith("_mean")]
        need(df, path, [f"{e}_sd" for e in etas])
        digits = 2 if df["metric"].iloc[0] == "bleu" else 3
        out += [f"{title}, {spread(int(df['n_seeds'].min()))}; MLE has no noise, its value "
                f"repeats under every η ({scale(df)}).", ""]
        rows = [[r["method"], *[fmt(r[f"{e}_mean"], r[f"{e}_sd"], digits) for e in etas]] for _, r in df.iterrows()]
        out += table(["method", *[f"η {e[len('eta_'):]}" for e in etas]], rows)
    return out


def ablation(paths) -> list[str]:
    df = read(paths, "ablation", ["divergence", "noise_type", "eta", "accuracy_mean", "accuracy_sd", "n_seeds"])
    etas = ", ".join(f"{e:g}" for e in sorted(df["eta"].unique()))
    noises = list(dict.fromkeys(df["noise_type"]))
    out = [f"**App. G.1 ablation**: SequenceMatch on add/sub in base at η {etas} with each divergence, "
           f"accuracy, {spread(int(df['n_seeds'].min()))} ({scale(df)}).", ""]
    rows = []
    for div in dict.fromkeys(df["divergence"]):
        sub = df[df["divergence"] == div].set_index("noise_type")
        rows.append([div, *[fmt(sub.loc[n, "accuracy_mean"], sub.loc[n, "accuracy_sd"]) if n in sub.index else "n/a"
                            for n in noises]])
    return out + table(["divergence", *noises], rows)


def time_budget(paths) -> list[str]:
    df = pd.read_csv(paths["time_budget"], keep_default_na=False, na_values=[""])
    need(df, paths["time_budget"], ["family", "jobs", "job_minutes", "core_minutes", "share", "wall_minutes",
                                    "two_core_minutes", "stretches"])
    last = df.iloc[-1]
    span = (f"{num(last['wall_minutes']):.1f} minutes from the first job's start to the last one's end (the run's "
            f"wall time where it ran in one invocation from nothing, on a machine nothing else used)"
            if int(last["stretches"]) == 1 else
            f"its jobs ran in {int(last['stretches'])} stretches with no job for over 10 minutes between them (jobs "
            f"rerun later), so no wall time of one run is given")
    out = [f"**Time budget** of the run behind these numbers (`results/time_budget.csv`, from the jobs' "
           f"Snakemake benchmarks; a study's jobs left out): {int(last['jobs'])} jobs, "
           f"{num(last['core_minutes']):.1f} core-minutes of CPU time ({num(last['job_minutes']):.1f} job-minutes "
           f"of wall time), i.e. {num(last['two_core_minutes']):.1f} minutes of 2 busy cores; {span}.", ""]
    rows = [[r.family, int(r.jobs), f"{num(r.core_minutes):.1f}", f"{100 * num(r.share):.0f} %"]
            for r in df.iloc[:-1].itertuples()]
    return out + table(["rule family", "jobs", "core-minutes", "share"], rows)


def summarize(paths: dict) -> str:
    """The markdown of summary.md from the CSVs named by paths (keys: INPUTS)."""
    missing = [k for k in INPUTS if k not in paths]
    if missing:
        raise ValueError(f"no input named {', '.join(missing)}")
    profile = read(paths, "figure3", ["profile"])["profile"].iloc[0]
    lines = [f"Profile **{profile}**; every number below is written from `results/` by "
             "`workflow/scripts/results_summary.py` (± is the sample sd; no ± where there is one seed; "
             "[low, high] a 95 % interval).", ""]
    for section in (figure3, differences, table1_recovery, table2, timing, accuracy_tables, ablation,
                    time_budget):
        lines += section(paths)
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------ README splice


def markers(name: str = "results") -> tuple[str, str]:
    """The marker lines of a spliced section: results (summary.md) or a study's name."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def splice(text: str, summary: str, name: str = "README", section: str = "results") -> str:
    """text with everything between the ``section``'s BEGIN and END marker lines replaced by summary;
    the markers and everything outside them stay as they are (splicing the same summary again
    changes nothing). A marker counts only alone on its line (the README may quote it in prose)."""
    begin_marker, end_marker = markers(section)
    found = {}
    for marker in (begin_marker, end_marker):
        hits = list(re.finditer(rf"^{re.escape(marker)}[ \t]*$", text, re.M))
        if len(hits) != 1:
            raise ValueError(f"{name}: the marker line {marker} must occur exactly once (found {len(hits)})")
        found[marker] = hits[0]
    start, end = found[begin_marker].end(), found[end_marker].start()
    if end < start:
        raise ValueError(f"{name}: {end_marker} comes before {begin_marker}")
    return text[:start] + "\n" + summary.strip("\n") + "\n" + text[end:]


def section_of(path: str) -> str:
    """results/summary.md -> 'results'; results/sm_study.md -> 'sm_study' (its markers' name)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return "results" if stem == "summary" else stem


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Splice results/summary.md (and a study's results/<study>.md) into "
                                             f"the README between {BEGIN} and {END} (<!-- <study>:begin --> ...).")
    ap.add_argument("summary", nargs="+", help="results/summary.md (the rule results_summary's) and/or "
                                               "results/<study>.md (the rule study's)")
    ap.add_argument("--readme", required=True, help="the file to update in place (README.md)")
    args = ap.parse_args(argv)
    try:
        with open(args.readme, encoding="utf-8") as f:
            text = f.read()
        new = text
        for path in args.summary:
            with open(path, encoding="utf-8") as f:
                new = splice(new, f.read(), args.readme, section_of(path))
    except (OSError, ValueError) as exc:
        sys.exit(f"results_summary: {exc}")
    if new != text:
        write_text(args.readme, new)
    print(f"{args.readme}: {'updated' if new != text else 'unchanged'} from {', '.join(args.summary)}")


if "snakemake" in globals():  # run by the rule results_summary
    log_to(snakemake)  # noqa: F821
    md = summarize({k: getattr(snakemake.input, k) for k in INPUTS})  # noqa: F821
    write_text(snakemake.output.md, md)  # noqa: F821
    print(md)
elif __name__ == "__main__":
    main()

"""results/outcome.md: the answer to "does SequenceMatch beat BC here?" in one paragraph, from the
studies (settings chosen on the validation rows, results/<study>.csv) and the paired test
differences of the chosen setting: a study with `split: test` that has the validation study's best
setting (results/<study>.csv of that study), else Figure 3's at the default setting
(results/differences.csv); by a rule fixed before the test numbers were seen:

* resolved gain: the t 95 % interval of SM − BC on the test questions lies above 0;
* resolved loss: it lies below 0;
* decisive negative: neither, but no study setting's validation t interval lies above 0 and the
  test interval's upper end is below MIN_EFFECT: whatever SM adds is smaller than a gain worth the
  name, at every setting studied;
* otherwise undecided (more seeds needed), said as such.

A setting's validation interval is read from a study that repeats its study with more seeds
(``replicates``; the seeds that chose the setting and fresh ones, on the same validation rows) where
one has it: the rule's remedy of more seeds, applied to the validation clause. (Added on 2026-12-07,
after the test numbers and before that study's numbers were computed, when a validation gain was
all that stood against a decisive negative.)

The t interval of the per-seed paired differences is the conservative one with three seeds (the
bootstrap one resamples the seeds, understating their spread); both are quoted."""

import math

import pandas as pd

from tablelib import log_to, num, write_text

# the smallest SM − BC accuracy gain we would call a gain: 3 points, the order of the paper's own
# arithmetic gains over BC (Tables 6 and 7: +0.02 to +0.06)
MIN_EFFECT = 0.03

log_to(snakemake)  # noqa: F821
diff = pd.read_csv(snakemake.input.differences)  # noqa: F821
chosen = snakemake.params.chosen  # noqa: F821  {study: the setting equal to the defaults, or None}
# {replication: the study it repeats with more seeds}
replicates = dict(getattr(snakemake.params, "replicates", None) or {})  # noqa: F821
# studies scored on the test questions (split: test): the settings chosen on validation, tested once
def stem(path: str) -> str:
    return path.rsplit("/", 1)[-1][: -len(".csv")]


tests = [(stem(p), pd.read_csv(p, keep_default_na=False, na_values=[""]))
         for p in getattr(snakemake.input, "tests", [])]  # noqa: F821


def pm(v, signed=True) -> str:
    return "n/a" if not math.isfinite(num(v)) else (f"{num(v):+.3f}" if signed else f"{num(v):.3f}")


def iv(lo, hi) -> str:
    return "n/a" if not (math.isfinite(num(lo)) and math.isfinite(num(hi))) else f"[{num(lo):+.3f}, {num(hi):+.3f}]"


def test_row(noise: str, eta: float, metric: str = "accuracy", comparison: str = "SM - BC"):
    r = diff[(diff.metric == metric) & (diff.noise == noise) & (diff.eta == eta) & (diff.comparison == comparison)]
    return r.iloc[0] if len(r) else None


def tested_setting(noise: str, eta: float, setting: str):
    """(test study name, its row as a differences.csv row) of ``setting`` scored on the test
    questions, or (None, None)."""
    for name, df in tests:
        r = df[(df.noise == noise) & (df.eta.astype(float) == eta) & (df.setting == setting)]
        if len(r):
            r = r.iloc[0]
            return name, pd.Series({"mean": r.sm_minus_bc, "ci95_low": r.sm_minus_bc_ci95_low,
                                    "ci95_high": r.sm_minus_bc_ci95_high, "t95_low": r.sm_minus_bc_t95_low,
                                    "t95_high": r.sm_minus_bc_t95_high, "per_seed": r.sm_minus_bc_per_seed,
                                    "n_seeds": r.sm_n_seeds, "n_questions": r.n_test})
    return None, None


studies = [(stem(p), pd.read_csv(p, keep_default_na=False, na_values=[""]))
           for p in snakemake.input.studies]  # noqa: F821


def replicated(name: str, noise: str, eta: float, setting: str):
    """(replication name, its row) of ``setting`` of study ``name`` repeated with more seeds, or
    (None, None)."""
    for rep, df in studies:
        if replicates.get(rep) == name:
            r = df[(df.noise == noise) & (df.eta.astype(float) == eta) & (df.setting == setting)]
            if len(r):
                return rep, r.iloc[0]
    return None, None


paragraphs = []
for name, study in studies:
    if name in replicates:  # quoted in the paragraph of the study it repeats
        continue
    for (noise, eta), sub in study.groupby(["noise", "eta"], sort=False):
        first = sub[sub.sm_minus_bc_t95_low > 0]  # on the study's own seeds
        again = {s: replicated(name, noise, float(eta), s) for s in first.setting}
        above = [s for s, (_, r) in again.items() if r is None or num(r.sm_minus_bc_t95_low) > 0]
        below = sub[sub.sm_minus_bc_t95_high < 0]
        best = sub.loc[sub.sm_minus_bc.idxmax()]
        pick = chosen.get(name)
        test = test_row(noise, float(eta))
        rec = test_row(noise, float(eta), "recovery")
        default_test, test_study = test, None
        if tests:
            test_study, tested = tested_setting(noise, float(eta), best.setting)
            if tested is not None:  # the best setting on validation, scored once on the test questions
                pick, test, rec = best.setting, tested, None
        if test is None or pick is None:
            verdict = "no test comparison (Figure 3 has no runs of this noise and η at the default setting)"
        elif num(test.t95_low) > 0:
            verdict = f"SequenceMatch beats BC: SM − BC {pm(test['mean'])}, t 95 % {iv(test.t95_low, test.t95_high)}"
        elif num(test.t95_high) < 0:
            verdict = f"SequenceMatch is worse than BC: SM − BC {pm(test['mean'])}, t 95 % {iv(test.t95_low, test.t95_high)}"
        elif not above and num(test.t95_high) < MIN_EFFECT:
            verdict = (f"SequenceMatch does not beat BC by {MIN_EFFECT:.2f} or more: no setting's validation interval "
                       f"lies above 0, and on the test questions SM − BC is {pm(test['mean'])}, t 95 % "
                       f"{iv(test.t95_low, test.t95_high)}")
        elif num(test.t95_high) < MIN_EFFECT:  # only a validation gain stands against a decisive negative
            verdict = (f"undecided: SM − BC on the test questions is {pm(test['mean'])}, t 95 % "
                       f"{iv(test.t95_low, test.t95_high)}, below a gain of {MIN_EFFECT:.2f}, but "
                       f"{', '.join(above)} resolved a gain on the validation rows, which the rule counts "
                       f"against a decisive negative")
        else:
            verdict = (f"undecided: SM − BC on the test questions is {pm(test['mean'])}, t 95 % "
                       f"{iv(test.t95_low, test.t95_high)}, which neither excludes 0 nor a gain of {MIN_EFFECT:.2f}")
        text = [f"**{noise.replace('_', '-')} noise, η {float(eta):g}** (`{name}`): {verdict}."]
        text.append(f"On the validation rows, {len(first)} of the {len(sub)} settings had an SM − BC t interval above 0 "
                    f"and {len(below)} below it; the largest mean was {best.setting} ({best.overrides}), "
                    f"{pm(best.sm_minus_bc)} (t {iv(best.sm_minus_bc_t95_low, best.sm_minus_bc_t95_high)}, "
                    f"bootstrap {iv(best.sm_minus_bc_ci95_low, best.sm_minus_bc_ci95_high)}).")
        for setting, (rep, r) in again.items():
            if r is not None:
                text.append(f"Repeated over {int(r.sm_n_seeds)} seeds on the same rows (`results/{rep}.csv`), "
                            f"{setting}'s SM − BC is {pm(r.sm_minus_bc)} (t {iv(r.sm_minus_bc_t95_low, r.sm_minus_bc_t95_high)}, "
                            f"bootstrap {iv(r.sm_minus_bc_ci95_low, r.sm_minus_bc_ci95_high)}; per seed "
                            f"{r.sm_minus_bc_per_seed}): " + ("its gain stands." if setting in above else
                                                              "its gain does not stand, and no longer counts "
                                                              "against a decisive negative."))
        if pick is not None and test is not None:
            row = sub[sub.setting == pick]
            val = (f", validation {pm(row.iloc[0].sm_minus_bc)} {iv(row.iloc[0].sm_minus_bc_t95_low, row.iloc[0].sm_minus_bc_t95_high)}"
                   if len(row) else "")
            where = (f"The chosen setting, {pick}{val}, scored once on the test questions (`results/{test_study}.csv`)"
                     if test_study else f"Figure 3 trains the default setting, {pick}{val}; on the test questions")
            text.append(f"{where}: over {int(test.n_seeds)} seeds and {int(test.n_questions)} questions SM − BC is "
                        f"{pm(test['mean'])} (bootstrap {iv(test.ci95_low, test.ci95_high)}, t {iv(test.t95_low, test.t95_high)}; "
                        f"per seed {test.per_seed})" + (f", and on mistake recovery {pm(rec['mean'])} (t {iv(rec.t95_low, rec.t95_high)})"
                                                        if rec is not None else "") + ".")
            if test_study and default_test is not None and chosen.get(name) is not None:
                text.append(f"Figure 3's runs, at the default setting {chosen[name]}: SM − BC {pm(default_test['mean'])} "
                            f"(t {iv(default_test.t95_low, default_test.t95_high)}).")
        diag = sub.dropna(subset=["sm_gcos_sm_bc"])
        if len(diag):
            lo_a, hi_a = diag.loc[diag.sm_regularizer_over_bc.idxmin()], diag.loc[diag.sm_regularizer_over_bc.idxmax()]
            text.append(f"What the SM phase did (training logs): from {lo_a.setting} to {hi_a.setting} the χ²-mixture "
                        f"regulariser's gradient grew from {num(lo_a.sm_regularizer_over_bc):.2f}× to "
                        f"{num(hi_a.sm_regularizer_over_bc):.2f}× BC's and the SM gradient's cosine with BC's fell from "
                        f"{num(lo_a.sm_gcos_sm_bc):.2f} to {num(hi_a.sm_gcos_sm_bc):.2f}; SM completions used "
                        f"`<bkspc>` in {num(lo_a.sm_bkspc_used):.0%} and {num(hi_a.sm_bkspc_used):.0%} of the "
                        f"validation questions (BC {num(lo_a.bc_bkspc_used):.0%}), with SM − BC "
                        f"{pm(lo_a.sm_minus_bc)} and {pm(hi_a.sm_minus_bc)}.")
        paragraphs.append(" ".join(text))

head = ("**Outcome** (written by `workflow/scripts/outcome.py` from `results/differences.csv` and the studies, by "
        "a rule fixed before the test numbers were seen" +
        ("; one clause was added after them, before the numbers it reads were computed: a setting's validation "
         "interval is read from the study that repeats it with more seeds" if replicates else "") +
        f"; its smallest gain worth the name: {MIN_EFFECT:.2f}).")
write_text(snakemake.output.md, "\n\n".join([head, *paragraphs]) + "\n")  # noqa: F821
print("\n\n".join([head, *paragraphs]))

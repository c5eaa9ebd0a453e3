"""results/bench.md: the ratios of `python -m seqmatch.bench` (results/bench.json), each with its
target and whether it was met, for README "Speed"."""

import json

from tablelib import log_to, write_text

log_to(snakemake)  # noqa: F821
res = json.load(open(snakemake.input.json))  # noqa: F821

ROWS = [  # key, what it compares (both sides timed in one process, alternated, medians taken)
    ("sm_over_mle_step_time_per_token", "χ²-mixture over data + replay rows, vs MLE, same model and masks"),
    ("sm_over_hf_causal_mle_step_time_per_token", "vs plain transformers MLE with its own causal mask"),
    ("hf_trainer_sm_over_sm_step_time_per_token", "the SM step run by a `transformers.Trainer` subclass, vs "
                                                  "seqmatch's loop; see \"Why not `transformers.Trainer`\""),
    ("bkspc_sampler_over_plain_throughput", "`<bkspc>` sampler vs `transformers` `generate`"),
    ("transform_over_naive_throughput", "vs Algorithm A transliterated"),
    ("sm_over_mle_peak_memory", "peak memory growth of one step"),
]

lines = [f"`python -m seqmatch.bench` (`results/bench.json`) on {res['device']}, {res['dtype']}, "
         f"{res['params_m']:.1f}M parameters, L = {res['seq_len']}, batch {res['batch']}:", "",
         "| ratio | measured | target |", "|---|---|---|"]
for key, what in ROWS:
    if key not in res:
        continue
    value = f"{res[key]:.2f}"
    if key == "sm_over_mle_peak_memory":
        value += f" ({res['sm_step_peak_mb']:.0f} MB vs {res['mle_step_peak_mb']:.0f} MB)"
    t = res.get("targets", {}).get(key)
    target = "—" if t is None else f"{'≤' if t['op'] == '<=' else '≥'} {t['bound']:g}, " + \
        ("met" if t["met"] else "**missed**")
    lines.append(f"| `{key}` ({what}) | {value} | {target} |")
write_text(snakemake.output.md, "\n".join(lines) + "\n")  # noqa: F821
print("\n".join(lines))

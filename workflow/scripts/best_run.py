"""resources/tables/table1_best_run.txt: the run directory of the most accurate model among the
given eval.json files (Table 1 uses the best SM model of Figure 3). Ties go to the first file."""

import json
import math
import os

from tablelib import log_to

log_to(snakemake)  # noqa: F821
best, best_acc = None, -math.inf
for path in snakemake.input.evals:  # noqa: F821
    with open(path) as f:
        acc = json.load(f).get("accuracy")
    acc = -math.inf if acc is None or not math.isfinite(float(acc)) else float(acc)
    print(f"{path}: accuracy {acc}")
    if best is None or acc > best_acc:
        best, best_acc = path, acc
print(f"best: {best} ({best_acc})")
with open(snakemake.output.best, "w") as f:  # noqa: F821
    f.write(os.path.dirname(best) + "\n")

"""Print the run directory of the most accurate model among eval.json files (Table 1 uses the
best SM model of Figure 3). Ties go to the first file given.

    python workflow/scripts/best_run.py RUN1/eval.json RUN2/eval.json ...
"""

import json
import math
import os
import sys


def main(paths):
    best, best_acc = None, -math.inf
    for path in paths:
        with open(path) as f:
            acc = json.load(f).get("accuracy")
        acc = -math.inf if acc is None or not math.isfinite(float(acc)) else float(acc)
        print(f"{path}: accuracy {acc}", file=sys.stderr)
        if best is None or acc > best_acc:
            best, best_acc = path, acc
    if best is None:
        sys.exit("best_run.py: no eval.json given")
    print(f"best: {best} ({best_acc})", file=sys.stderr)
    print(os.path.dirname(best))


if __name__ == "__main__":
    main(sys.argv[1:])

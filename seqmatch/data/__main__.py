"""``python -m seqmatch.data ...``: run :func:`seqmatch.data.cli.main`; a :class:`DataSourceError`
(missing wheel, unreachable hub, ...) exits with status 2 and its message, without a traceback."""

import sys

from seqmatch.data.cli import main
from seqmatch.data.sources import DataSourceError

if __name__ == "__main__":
    try:
        main()
    except DataSourceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

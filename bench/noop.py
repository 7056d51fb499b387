"""`python -m bench.noop`: a no-op `migrator upgrade` at head vs plain `alembic upgrade head`.

Almost every deploy is a no-op, so this is the number the hook Job pays most often. The same
row is part of the full suite (`python -m bench`); this runs it alone, on a fresh server.
"""

from __future__ import annotations

import sys

from bench.report import table
from bench.suite import Bench, Sizes, local_server


def main() -> int:
    with local_server() as server:
        bench = Bench(server, Sizes())
        try:
            row = bench.noop()
        finally:
            bench.close()
    print(table([row]))
    return 0 if row.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m migrator`, the same as the `migrator` console script."""

import sys

from migrator.cli import main

sys.exit(main())

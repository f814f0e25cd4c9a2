"""`python -m edgespec` runs the console script."""

import sys

from edgespec.cli import main

sys.exit(main())

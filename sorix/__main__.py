"""`python -m sorix`: the sorix command line (see `sorix.cli`)."""

import sys

from sorix.cli import main

sys.exit(main())

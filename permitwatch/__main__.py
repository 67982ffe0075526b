"""`python -m permitwatch`: the command line."""

import sys

from permitwatch.api.cli import main

sys.exit(main())

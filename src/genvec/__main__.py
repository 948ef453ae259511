"""`python -m genvec` runs the CLI."""

import sys

from genvec.cli import main

sys.exit(main())

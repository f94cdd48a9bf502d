"""``python -m once``: the ``once`` command line (see once/cli.py)."""
import sys

from .cli import main

sys.exit(main())

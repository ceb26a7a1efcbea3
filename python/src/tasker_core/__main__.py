"""python -m tasker_core: the command line (tasker_core.cli)."""
import sys

from .cli import main

sys.exit(main())

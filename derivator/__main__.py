"""python -m derivator: the same as the `derivator` command."""
import sys

from .cli import main

sys.exit(main())

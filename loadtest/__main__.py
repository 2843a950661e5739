"""`python -m loadtest run|merge|setup ...` (the same as `wrencos loadtest ...`)."""

import sys

from loadtest.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench.soak --minutes 20` (what `make soak` runs): exit code 0 only if the verdict passed."""

import os
import sys

os.environ.setdefault("RAY_AUTH_MODE", "token")  # the cluster authenticates with a token; Ray reads this on import

from bench.soak.run import main  # after the environment Ray reads on import

sys.exit(main())

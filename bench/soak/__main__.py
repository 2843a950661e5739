"""`python -m bench.soak --minutes 20` (what `make soak` runs): exit code 0 only if the verdict passed."""

import os
import sys

from actors.ray_env import apply_ray_env

apply_ray_env(os.environ)  # Ray reads part of it when it is imported

from bench.soak.run import main  # noqa: E402 - after the environment Ray reads on import

sys.exit(main())

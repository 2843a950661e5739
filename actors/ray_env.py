"""The environment every Ray process of this system runs with: the head, every
node, every gateway (a Ray driver) and the tests' clusters. Set it before Ray
starts (`ray start`, `ray.init`); `ray_cluster.yaml` and `deploy/` spell the
same variables out, and `tests/deploy/` checks that they do.

- `RAY_AUTH_MODE=token`: the cluster authenticates with a shared token (Ray's
  default for local clusters since 2.59); Ray reads it when it is imported.
- `RAY_task_events_report_interval_ms=0`: Ray would otherwise record every
  task and actor call in the head's control store (GCS), for the dashboard's
  task list, which we do not use. Measured here, an actor call costs the GCS
  about 3.3 KB that way, kept up to 100,000 calls per job: 60,000 calls took
  the GCS from 44 to 239 MiB (with the variable set: 44 to 45 MiB), and the
  20-minute soak saw it grow 10 MiB a minute. Gateways make thousands of calls
  a second, so without it the head's memory is bounded only by that cap.
"""

from __future__ import annotations

from collections.abc import MutableMapping

RAY_ENV: dict[str, str] = {
    "RAY_AUTH_MODE": "token",
    "RAY_task_events_report_interval_ms": "0",
}


def apply_ray_env(environ: MutableMapping[str, str]) -> None:
    """Put `RAY_ENV` into `environ`, keeping a value an operator set explicitly."""
    for name, value in RAY_ENV.items():
        environ.setdefault(name, value)

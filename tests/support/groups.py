"""The two groups of tests `make test` runs side by side, one pytest-xdist worker each
(`-n 2 --dist loadgroup`).

- `own-processes`: the files in `OWN_PROCESSES_FILES`. They start clusters or whole systems of
  their own (`ray start` nodes, `wrencos run`, the soak, private databases) and spend most of their
  wall time waiting on them: fault windows, node timeouts, restarts.
- `session`: every other test, on the session's Ray cluster, database and gateway.

Each xdist worker is a pytest session of its own: its own session fixtures (a Ray cluster started
by `ray.init`, an embedded database, a random namespace, a gateway), its own temp directory
(`popen-gwN`), and ports each process picks free. So the two groups share no process, port,
namespace, directory or data; a group never waits on the other's fixtures either.

The groups are by file, in the scheduler (`GroupScheduling`), not by `xdist_group` marks:
pytest-xdist 3.8 tells its scheduler a mark's group by renaming the test (`item._nodeid`), which
pytest 9 no longer reads, so marked tests were spread over both workers. Without `-n`
(`make test-serial`, `pytest FILE`) the groups change nothing but the summary's lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from xdist.scheduler import LoadScopeScheduling

OWN_PROCESSES = "own-processes"
SESSION = "session"

OWN_PROCESSES_FILES = frozenset(
    {
        "tests/bench/test_soak.py",  # the whole system for a minute under load and faults
        "tests/system/test_faults_under_load.py",  # 30 s hangs under load, private database and gateways
        "tests/system/test_cluster.py",  # three `ray start` nodes, node timeouts
        "tests/system/test_autoscaling.py",  # nodes launched and idled out by the autoscaler
        "tests/system/test_head_failover.py",  # a head killed and replaced, GCS state on Redis
        "tests/system/test_run_restart.py",  # two whole `wrencos run` starts
        "tests/system/test_first_hour.py",  # `wrencos run` started and interrupted, again and again
        "tests/system/test_db_outage.py",  # a private database hung with SIGSTOP
    }
)


def group_of(nodeid: str) -> str:
    """The group of a test, from its node id (`tests/x/test_y.py::test_z[...]`)."""
    return OWN_PROCESSES if nodeid.split("::", 1)[0] in OWN_PROCESSES_FILES else SESSION


class GroupScheduling(LoadScopeScheduling):
    """xdist's scheduling by scope, the scope being the group: each worker is given one group
    whole (two groups, two workers), and runs its tests in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)


@dataclass
class Span:
    first_start: float
    last_stop: float
    tests: int = 0
    busy_s: float = 0.0  # the sum of the tests' own durations (setup, call, teardown)


class GroupClock:
    """Each group's wall time, from the test reports (in the xdist controller, or in a serial run)."""

    def __init__(self) -> None:
        self.spans: dict[str, Span] = {}

    def record(self, report: pytest.TestReport) -> None:
        span = self.spans.setdefault(group_of(report.nodeid), Span(report.start, report.stop))
        span.first_start = min(span.first_start, report.start)
        span.last_stop = max(span.last_stop, report.stop)
        span.busy_s += report.duration
        if report.when == "call" or (report.when == "setup" and not report.passed):
            span.tests += 1

    def lines(self) -> list[str]:
        return [
            f"{group}: {span.tests} tests, {span.last_stop - span.first_start:.0f} s from its first test's start "
            f"to its last test's end ({span.busy_s:.0f} s in the tests themselves)"
            for group, span in sorted(self.spans.items())
        ]

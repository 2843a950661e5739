"""How a `wrencos` command fails: one line on stderr, no traceback.

A command raises `CommandError`; `wrencos.cli` prints `error: <message>` and exits with
its `exit_code`: 2 when the command cannot run at all (nothing answers at the address,
a bad argument or setting), 1 when it ran and was refused (a wrong password, not an
admin, a stream that is not live).
"""

from __future__ import annotations

CANNOT_RUN = 2
REFUSED = 1


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code

"""Reading a password for a command: from a prompt, or from standard input for scripts.

At a terminal the password is asked without echo (twice when it sets one, to catch a
typo); with `--password-stdin`, or when standard input is not a terminal (a pipe, a
script, a test), it is the first line of standard input, read once.
"""

from __future__ import annotations

import getpass
import sys

from runtime.settings import password_length_problem
from wrencos.command_errors import CANNOT_RUN, CommandError


def read_password(prompt: str, *, from_stdin: bool, confirm: bool = False) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise CommandError("no password on standard input (one line expected)", CANNOT_RUN)
        return line.rstrip("\r\n")
    try:
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again, to confirm: ") != password:
            raise CommandError("the two passwords differ: nothing was changed", CANNOT_RUN)
    except EOFError:
        raise CommandError("no password given", CANNOT_RUN) from None
    return password


def check_admin_password(password: str) -> str:
    """`password` if it follows the rule of every password here (a customer's, and
    ADMIN_PASSWORD's in the configuration); else CommandError saying the rule."""
    problem = password_length_problem(password)
    if problem is not None:
        raise CommandError(f"an admin's password is {problem}", CANNOT_RUN)
    return password

"""The mutation score per module, from the results `mutmut run` leaves in `mutants/` (`make mutation`).

A mutant is killed when a test failed (or timed out) with it in place, survived when every test passed.
Mutants listed in `tests/core/equivalent_mutants.md` behave exactly like the code they replace (each entry
says why), so they are left out of the score but still counted. The score is killed / (total - equivalent).

Exits with 1 if any mutated module (the stream rules, money, order rules, chat names, the prewarm plan:
`only_mutate` in `pyproject.toml`) scores below `FLOOR`, or a listed equivalent mutant was killed (the
list is then out of date).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code

FLOOR = 0.90
MUTANTS = Path("mutants")
EQUIVALENT_LIST = Path(__file__).with_name("equivalent_mutants.md")
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def equivalent_mutants(text: str) -> set[str]:
    """The mutant names listed in the equivalents file: one `- \\`name\\`: reason` per line."""
    return set(re.findall(r"^- `([\w.ǁ]+__mutmut_\d+)`: \S", text, flags=re.MULTILINE))


def main() -> int:
    equivalent = equivalent_mutants(EQUIVALENT_LIST.read_text())
    failed = False
    rows: list[tuple[str, int, int, int, int, str, list[str]]] = []
    unrun_total = 0
    for meta in sorted(MUTANTS.glob("core/**/*.py.meta")):
        exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not exit_codes:
            continue
        module = str(meta.relative_to(MUTANTS)).removesuffix(".meta")
        statuses = {name: status_by_exit_code[code] for name, code in exit_codes.items()}
        killed = sorted(n for n, s in statuses.items() if s in KILLED)
        listed = sorted(n for n in statuses if n in equivalent and n not in killed)
        survivors = sorted(n for n, s in statuses.items() if s not in KILLED and n not in equivalent)
        unrun = sum(s == "not checked" for s in statuses.values())
        wrongly_listed = sorted(set(killed) & equivalent)
        scored = len(statuses) - len(listed)
        score = len(killed) / scored if scored else 1.0
        verdict = "ok" if score >= FLOOR else "below"
        if score < FLOOR or wrongly_listed:
            failed = True
        unrun_total += unrun
        rows.append((module, len(statuses), len(killed), len(listed), len(survivors), f"{score:.1%}", survivors))
        for name in wrongly_listed:
            print(f"error: {name} is listed as equivalent but a test kills it: remove it from {EQUIVALENT_LIST}")
        rows[-1] = (*rows[-1][:5], f"{score:.1%} {verdict}", survivors)
    print(f"{'module':<28} {'mutants':>7} {'killed':>6} {'equiv':>5} {'left':>5}  score (killed / (mutants - equiv))")
    for module, total, killed_n, equiv_n, left_n, score_text, _ in rows:
        print(f"{module:<28} {total:>7} {killed_n:>6} {equiv_n:>5} {left_n:>5}  {score_text}")
    for module, *_, survivors in rows:
        if survivors:
            shown = ", ".join(name.rsplit(".", 1)[-1] for name in survivors[:12])
            more = f" (+{len(survivors) - 12} more)" if len(survivors) > 12 else ""
            print(f"survivors in {module}: {shown}{more}")
    if unrun_total:
        print(f"error: {unrun_total} mutants not run yet (an interrupted run?): run `make mutation` again")
        failed = True
    print("see one with: .venv/bin/mutmut show NAME  (run from the project root)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Schemathesis against the OpenAPI document of a real gateway, with its default
checks (server errors, status codes, content types, headers, response schemas,
negative data rejection, ignored auth...): zero failures.

* Every role: anonymous, customer, moderator and admin, each its own run.
* Every phase: examples, coverage (admin and customer: see `PHASES`), fuzzing
  (`MAX_EXAMPLES` cases per operation that takes input) and the stateful phase
  (`STATEFUL_EXAMPLES`),
  which follows the document's links (`gateway/rest/links.py`): a created
  product is read, changed, ordered and deleted, a created order is paid, a
  payment confirmed.
* The rate limits as shipped (`Settings`' defaults for logins, sign-ups and
  orders; a 429 documents its `Retry-After`, which the header check verifies),
  for a customer and an anonymous caller (fuzzing and stateful phases), beside
  the gateway without them, where the runs reach deeper.
* What ran is asserted from each run's JUnit report and NDJSON event stream, so
  a run that silently tests nothing fails: every documented operation has a
  result and was called in each phase, the fuzzing phase sent its cases to
  every operation, stateful scenarios ran, an admin's followed the document's
  own links, and the shipped limits answered 429.

The six runs are separate processes started together (they share nothing but
the gateway they test). Each gateway has its own Ray namespace (so its own
registry) and database, so whatever the fuzzer creates or deletes touches no
other test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.rest.links import LINKS
from runtime.settings import Settings
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, start_gateway

pytestmark = pytest.mark.system

MAX_EXAMPLES = 10  # per operation, in the fuzzing phase (the examples and coverage phases add their own)
STATEFUL_EXAMPLES = 40  # stateful scenarios asked for: each a chain of calls that follows links
# Schemathesis' own configuration (`schemathesis.toml`): what the CLI has no flag for.
CONFIG = f"""
[phases.stateful]
generation.max-examples = {STATEFUL_EXAMPLES}
"""
ROLES = ["anonymous", "customer", "moderator", "admin"]
ALL_PHASES = "examples,coverage,fuzzing,stateful"
# The coverage phase (boundary and invalid values of every field, every undocumented method: about 2,000
# cases a run, three quarters of a run's time) for the two roles whose requests get past authorisation
# everywhere they may go: an admin (every operation) and a customer (orders, payments, likes, views).
# An anonymous caller and a moderator are refused before validation on most operations, so for them
# the coverage phase repeats what the others did; they get examples, fuzzing and the stateful phase.
PHASES = {
    "admin": ALL_PHASES,
    "customer": ALL_PHASES,
    "anonymous": "examples,fuzzing,stateful",
    "moderator": "examples,fuzzing,stateful",
}
PASSWORD = "fuzz-password-1"


def shipped_limit(field: str) -> str:
    default = Settings.model_fields[field].default
    assert isinstance(default, int) and default > 0, f"{field} is shipped off"
    return str(default)


@pytest.fixture(scope="module")
def gateways(ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path) -> Iterator[dict[str, str]]:
    """Two gateways: `unlimited` (the login, sign-up and order rate limits off) and
    `shipped` (those limits at the defaults a deployment gets)."""
    off = {"LOGIN_RATE_PER_MINUTE": "0", "ORDER_RATE_PER_MINUTE": "0", "SIGNUP_RATE_PER_MINUTE": "0"}
    shipped = {
        "LOGIN_RATE_PER_MINUTE": shipped_limit("login_rate_per_minute"),
        "ORDER_RATE_PER_MINUTE": shipped_limit("order_rate_per_minute"),
        "SIGNUP_RATE_PER_MINUTE": shipped_limit("signup_rate_per_minute"),
    }
    procs: list[Process] = []
    urls: dict[str, str] = {}
    try:
        for name, env in (("unlimited", off), ("shipped", shipped)):
            proc, url = start_gateway(
                ray_cluster, embedded_db.uri, f"{namespace}-st-{name}", log_dir, db_name=f"st_{name}", env_overrides=env
            )
            procs.append(proc)
            urls[name] = url
        yield urls
    finally:
        for proc in procs:
            proc.terminate()


def account(http: httpx.Client, email: str) -> tuple[str, str]:
    """(user id, token) of a customer account, registered or logged in."""
    r = http.post("/auth/register", json={"email": email, "password": PASSWORD})
    if r.status_code == 409:
        r = http.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.is_success, r.text
    body = r.json()
    return str(body["user"]["id"]), str(body["token"])


def tokens(url: str) -> dict[str, str | None]:
    """A token per role, and something to point at: a live stream and a product."""
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert r.is_success, r.text
        admin = r.json()["token"]
        auth = {"Authorization": f"Bearer {admin}"}
        _, customer = account(http, "fuzz-customer@example.com")
        # Not "fuzz-moderator": a name that passes for staff is refused (name_reserved).
        moderator_id, _ = account(http, "fuzz-keeper@example.com")
        r = http.patch(f"/users/{moderator_id}/role", json={"role": "moderator"}, headers=auth)
        assert r.is_success, r.text
        _, moderator = account(http, "fuzz-keeper@example.com")  # a token issued with the new role
        sid = http.post("/livestreams", json={"title": "Schemathesis"}, headers=auth).json()["id"]
        assert http.post(f"/livestreams/{sid}/start", headers=auth).is_success
        r = http.post("/products", json={"name": "Fuzz lamp", "price": 12.5, "stock": 1000}, headers=auth)
        assert r.status_code == 201, r.text
    return {"anonymous": None, "customer": customer, "moderator": moderator, "admin": admin}


@dataclass(frozen=True)
class Run:
    """What one Schemathesis run exercised, read from its own reports."""

    junit_operations: set[str]  # "METHOD /path" of every operation JUnit reports a result for
    failures: list[str]  # JUnit test cases with a failure or an error
    cases: dict[str, Counter[str]]  # phase -> "METHOD /path" -> test cases sent (examples, coverage, fuzzing)
    scenarios: int  # stateful scenarios that ran (not skipped)
    stateful_cases: int  # requests made by the stateful phase
    links_followed: Counter[str]  # explicit links (the document's) followed: "METHOD /path -> [status] Name -> ..."
    statuses: Counter[int]  # every answer's status code
    output: str

    def summary(self) -> str:
        return self.output[self.output.rfind("Test cases:") :].strip()


def schemathesis_args(url: str, token: str | None, workdir: Path, phases: str) -> list[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "42",
        # One worker: Schemathesis' workers are threads, and on CPython 3.11 concurrent `ast.parse` calls
        # (Hypothesis describing its filters) can fail with "SystemError: AST constructor recursion depth
        # mismatch" (python/cpython#106905), an error of the tool, not of the API.
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",
        "--phases",
        phases,
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--report",
        "junit,ndjson",
        "--report-junit-path",
        str(workdir / "junit.xml"),
        "--report-ndjson-path",
        str(workdir / "events.ndjson"),
    ]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    return args


def read_run(workdir: Path, output: str) -> Run:
    junit_operations: set[str] = set()
    failures: list[str] = []
    for case in ET.parse(workdir / "junit.xml").getroot().iter("testcase"):
        junit_operations.add(str(case.get("name")))
        if case.find("failure") is not None or case.find("error") is not None:
            failures.append(str(case.get("name")))
    cases: dict[str, Counter[str]] = {}
    scenarios = stateful_cases = 0
    links: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for line in (workdir / "events.ndjson").read_text().splitlines():
        [(kind, event)] = json.loads(line).items()
        if kind != "ScenarioFinished" or event["status"] == "skip":
            continue
        recorder = event["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            if interaction.get("response"):
                statuses[int(interaction["response"]["status_code"])] += 1
        if event["phase"] == "stateful":
            scenarios += 1
            for case in recorder.get("cases", {}).values():
                stateful_cases += 1
                transition = case.get("transition")
                if transition and not transition["is_inferred"]:
                    links[transition["id"]] += 1
        else:
            cases.setdefault(event["phase"], Counter())[recorder["label"]] += len(recorder.get("cases", {}))
    return Run(junit_operations, failures, cases, scenarios, stateful_cases, links, statuses, output)


@pytest.fixture(scope="module")
def runs(gateways: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every run at once (separate processes, one per role and gateway): they share nothing
    but the gateway they test, and the machine's two cores finish them sooner side by side."""
    # The shipped limits are there for their 429s: fuzzing and stateful reach them; the coverage
    # phase's boundary values of every field are the same as on the other gateway, and cost the most.
    plan: dict[str, tuple[str, str, str]] = {role: ("unlimited", role, PHASES[role]) for role in ROLES}
    plan["shipped limits, customer"] = ("shipped", "customer", "fuzzing,stateful")
    plan["shipped limits, anonymous"] = ("shipped", "anonymous", "fuzzing,stateful")
    started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    role_tokens = {name: tokens(url) for name, url in gateways.items()}
    for name, (gateway, role, phases) in plan.items():
        workdir = tmp_path_factory.mktemp("schemathesis")
        args = schemathesis_args(gateways[gateway], role_tokens[gateway][role], workdir, phases)
        out = (workdir / "output.txt").open("w")
        started[name] = (subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=workdir), workdir)
    results: dict[str, Run] = {}
    try:
        for name, (proc, workdir) in started.items():
            code = proc.wait(timeout=300)
            output = (workdir / "output.txt").read_text()
            assert code == 0, f"{name}: exit {code}\n{output[-15000:]}"
            results[name] = read_run(workdir, output)
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.kill()
    return results


def documented_operations(url: str) -> dict[str, bool]:
    """ "METHOD /path" of every documented operation -> whether it takes any input (parameters, a body)."""
    doc = httpx.get(f"{url}/openapi.json", timeout=30).json()
    return {
        f"{method.upper()} {path}": bool(op.get("parameters") or op.get("requestBody"))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def assert_tested_everything(run: Run, documented: dict[str, bool], phases: str) -> None:
    assert run.failures == []
    assert run.junit_operations >= set(documented), f"no result for {sorted(set(documented) - run.junit_operations)}"
    for phase in ("coverage", "fuzzing"):
        if phase in phases:
            called = run.cases.get(phase, Counter())
            assert set(called) >= set(documented), f"{phase} never called {sorted(set(documented) - set(called))}"
    # The fuzzing phase sent MAX_EXAMPLES cases to every operation that takes input (one to the others).
    fuzzed = run.cases["fuzzing"]
    short = {op: fuzzed[op] for op, takes_input in documented.items() if takes_input and fuzzed[op] < MAX_EXAMPLES}
    assert short == {}, f"fewer than {MAX_EXAMPLES} fuzzing cases: {short}"
    assert run.scenarios > 0 and run.stateful_cases > run.scenarios, (run.scenarios, run.stateful_cases)


@pytest.mark.parametrize("role", ROLES)
def test_openapi_fuzzing_finds_nothing(gateways: dict[str, str], runs: dict[str, Run], role: str) -> None:
    """Each role on the gateway without rate limits: zero failures, every documented operation called."""
    run = runs[role]
    assert_tested_everything(run, documented_operations(gateways["unlimited"]), PHASES[role])
    print(role, run.summary(), dict(run.links_followed))  # shown with `pytest -rP`


def test_the_stateful_phase_follows_the_documents_links(runs: dict[str, Run]) -> None:
    """An admin may call every operation a link leads to: the stateful phase followed the links
    the document declares (not only those Schemathesis infers) from created resources onwards."""
    followed = runs["admin"].links_followed
    declared = {name for links in LINKS.values() for name in links}
    assert followed, "the stateful phase followed none of the document's links"
    assert {link.split(" -> ")[1].split("] ")[1] for link in followed} <= declared
    print("links followed:", dict(followed))


@pytest.mark.parametrize("role", ["customer", "anonymous"])
def test_openapi_fuzzing_with_the_rate_limits_as_shipped(
    gateways: dict[str, str], runs: dict[str, Run], role: str
) -> None:
    """The gateway as deployed (login, sign-up and order limits on): a 429 is a documented answer,
    and the checks (status code, headers, schema) accept it; nothing else fails."""
    run = runs[f"shipped limits, {role}"]
    assert_tested_everything(run, documented_operations(gateways["shipped"]), "fuzzing,stateful")
    # Both runs share the gateway and its per-address limits: between them, the limits were reached.
    answered_429 = sum(r.statuses[429] for name, r in runs.items() if name.startswith("shipped limits"))
    assert answered_429 > 0, "the shipped limits never answered 429: were they on?"
    print(role, "shipped limits", run.summary(), "429s:", run.statuses[429])

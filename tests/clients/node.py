"""Running the JS client's Node tools from pytest: `npm ci` when its
node_modules is missing or older than its lock file, then `tsc`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
NPM_CI_TIMEOUT_S = 600.0
TSC_TIMEOUT_S = 180.0


def node() -> str:
    """The `node` binary (Node 20 or newer), or a failure saying how to get it."""
    found = shutil.which("node")
    if found is None:
        pytest.fail("these tests need Node.js 20 or newer on PATH (`node`, `npm`)")
    major = int(
        subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout[1:].split(".")[0]
    )
    if major < 20:
        pytest.fail(f"these tests need Node.js 20 or newer; found {major}")
    return found


def npm_ready() -> Path:
    """`clients/js` with its dependencies installed exactly as locked (`npm ci`,
    only when node_modules is missing or stale). Returns the folder."""
    node()
    installed = JS_DIR / "node_modules" / ".package-lock.json"
    lock = JS_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            check=True,
            timeout=NPM_CI_TIMEOUT_S,
        )
    return JS_DIR


def built() -> Path:
    """`clients/js` installed and compiled (`tsc` into `dist/`)."""
    js = npm_ready()
    subprocess.run(
        [node(), "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], cwd=js, check=True, timeout=TSC_TIMEOUT_S
    )
    return js

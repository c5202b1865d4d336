"""Run the official SDK's own API-resource tests against the emulator (`make conformance`).

The `anthropic` source distribution of the installed version ships the tests the SDK's
authors run against their mock server. This script fetches it from the package registry
(once, into WORKDIR), installs the pytest plugins those tests need into WORKDIR/site (kept
out of the virtualenv, so the project's own suite keeps its plugin set), starts the
emulator on a free port and runs the tests with `TEST_API_BASE_URL` pointing at it.

    python tests/emulator/conformance.py [--workdir DIR] [PYTEST ARGS...]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from anthropic_batch_request_util.emulator import Emulator, EmulatorConfig

#: the SDK's test files that exercise the endpoints the emulator serves
TEST_FILES = (
    "tests/api_resources/messages/test_batches.py",
    "tests/api_resources/test_messages.py",
)
#: what the SDK's conftest and those tests import (its dev dependencies, trimmed)
PLUGINS = (
    "respx",
    "pytest-asyncio",
    "dirty-equals",
    "inline-snapshot",
    "http-snapshot[httpx]==0.1.9",
    "aiohttp>=3.10,<4",
)
#: the SDK's addopts ask for pytest-xdist; these keep only its httpx→httpx2 alias
ADDOPTS = "-p tests._alias_httpx"


def fetch_sdist(version: str, workdir: Path) -> Path:
    """The unpacked `anthropic` sdist of this version (downloaded once)."""
    unpacked = workdir / f"anthropic-{version}"
    if (unpacked / "tests" / "conftest.py").exists():
        return unpacked
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    pip += ["--no-binary", ":all:", f"anthropic=={version}", "-d", str(workdir)]
    subprocess.run(pip, check=True)
    with tarfile.open(workdir / f"anthropic-{version}.tar.gz") as archive:
        archive.extractall(workdir, filter="data")
    return unpacked


def install_plugins(workdir: Path) -> Path:
    """The directory holding the test plugins (installed once)."""
    site = workdir / "site"
    stamp = site / ".installed"
    if not stamp.exists():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site)]
        subprocess.run([*pip, *PLUGINS], check=True)
        stamp.touch()
    return site


def run(workdir: Path, pytest_args: list[str]) -> int:
    """Fetch, install, serve and test; pytest's exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("anthropic")
    sdist = fetch_sdist(version, workdir)
    site = install_plugins(workdir)
    print(f"conformance: anthropic {version} SDK tests against the emulator", flush=True)
    with Emulator(EmulatorConfig(processing_seconds=0.2, retry_after=0.0)) as emulator:
        env = os.environ | {"TEST_API_BASE_URL": emulator.base_url, "PYTHONPATH": str(site)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["-o", f"addopts={ADDOPTS}", *TEST_FILES, *pytest_args]
        return subprocess.run(command, cwd=sdist, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".venv/conformance"))
    args, pytest_args = parser.parse_known_args()
    try:
        return run(args.workdir.resolve(), pytest_args)
    except subprocess.CalledProcessError as error:
        print(f"conformance: error: {' '.join(error.cmd[:5])}… failed", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

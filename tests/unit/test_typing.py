"""The Python API is typed for its users: `mypy --strict` accepts a script that uses every
public name (tests/typing/user_script.py), and rejects one that misuses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import anthropic_batch_request_util as abr

SCRIPT = Path(__file__).resolve().parents[1] / "typing" / "user_script.py"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for this module's runs (the first one reads the dependencies)."""
    return tmp_path_factory.mktemp("mypy-cache")


def mypy_strict(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_user_script_uses_every_public_name() -> None:
    text = SCRIPT.read_text(encoding="utf-8")

    unused = [name for name in abr.__all__ if f"abr.{name}" not in text]
    assert not unused, f"user_script.py does not use {unused}"


def test_mypy_strict_accepts_a_script_using_the_whole_api(cache_dir: Path) -> None:
    completed = mypy_strict(SCRIPT, cache_dir)

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_mypy_strict_rejects_a_misuse(tmp_path: Path, cache_dir: Path) -> None:
    # a test that can fail: the types say something
    script = tmp_path / "wrong.py"
    script.write_text(
        "import anthropic_batch_request_util as abr\n"
        "job = abr.job('x')\n"
        "text: int = next(job.results()).text\n",
        encoding="utf-8",
    )

    completed = mypy_strict(script, cache_dir)

    assert completed.returncode == 1
    assert "Incompatible types in assignment" in completed.stdout

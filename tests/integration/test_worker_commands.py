"""`make start-worker` / `make stop-worker` and the deployment files, as a user meets them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from anthropic_batch_request_util.config import ENV_VARS
from anthropic_batch_request_util.store.locks import pid_alive

REPO = Path(__file__).resolve().parents[2]


def _make(target: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", target],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_start_and_stop_worker_leave_no_process_behind(tmp_path: Path) -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail("Redis is not reachable in CI")
        pytest.skip("Redis is not reachable")
    env = dict(os.environ)
    env.update(
        ABR_BROKER_URL="redis://127.0.0.1:6379/14",
        ABR_STORAGE_BASE_DIR=str(tmp_path / "out"),
    )
    # Given a worker started in the background
    started = _make("start-worker", env, tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    pid_file = tmp_path / "out" / "logs" / "celery-worker.pid"
    pid = int(pid_file.read_text())
    assert pid_alive(pid)
    assert (tmp_path / "out" / "logs" / "celery-worker.log").exists()

    # When it is stopped
    stopped = _make("stop-worker", env, tmp_path)

    # Then no worker process is left and the pid file is gone
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid)
    assert not pid_file.exists()
    assert "stopped" in stopped.stdout


def test_worker_without_a_shared_broker_is_a_clear_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "abr"), "worker", "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("abr: error:") and "broker" in completed.stderr


def _abr_env_names(environment: object) -> set[str]:
    if isinstance(environment, dict):
        return {name for name in environment if name.startswith("ABR_")}
    return set()


def test_compose_file_refers_to_commands_and_settings_that_exist() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "worker", "flower"} <= set(services)
    assert services["worker"]["command"][:2] == ["worker", "debug"]
    for service in services.values():
        assert _abr_env_names(service.get("environment")) <= set(ENV_VARS)
    flower = services["flower"]["command"]
    assert "anthropic_batch_request_util.engine.tasks:app" in flower
    assert (REPO / "Dockerfile").exists()


def test_devcontainer_refers_to_files_and_settings_that_exist() -> None:
    folder = REPO / ".devcontainer"
    config = json.loads((folder / "devcontainer.json").read_text())
    for name in config["dockerComposeFile"]:
        compose = yaml.safe_load((folder / name).read_text())
        assert config["service"] in compose["services"]
    assert _abr_env_names(config["remoteEnv"]) <= set(ENV_VARS)
    assert "make install" in config["postCreateCommand"]


def test_compose_waits_for_healthy_stores_needs_no_dotenv_and_takes_no_store_ports() -> None:
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    # Redis and PostgreSQL say when they are ready, and what uses them waits for that
    for store in ("redis", "postgres"):
        assert services[store]["healthcheck"]["test"], store
        assert "ports" not in services[store], f"{store} takes a host port"
    for name in ("worker", "abr"):
        waits = services[name]["depends_on"]
        assert waits == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
        # a missing .env is no error
        assert all(not entry.get("required", True) for entry in services[name]["env_file"])
    assert services["flower"]["depends_on"] == {"redis": {"condition": "service_healthy"}}

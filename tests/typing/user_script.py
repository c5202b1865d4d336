"""A user's script that touches every public name of the Python API; `mypy --strict` must
accept it (tests/unit/test_typing.py). It is type-checked, never run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic_batch_request_util as abr


def requests() -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(3):
        yield f"q{i}", {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}]}


def show(status: abr.Status) -> None:
    chunks: tuple[abr.Chunk, ...] = status.chunks
    print(status.job_id, status.done, status.total, status.eta_s, len(chunks))


def main() -> None:
    settings = abr.Settings(model={"name": "claude-3-5-haiku-20241022"}, batch={"chunk_size": 2})
    try:
        job: abr.Job = abr.run(requests(), settings=settings, max_cost=1.0, progress=show)
    except abr.JobInterrupted as stopped:
        print(stopped.job_id)
        return
    except abr.InputError as error:
        problems: list[str] = error.problems
        print(problems)
        return
    except (abr.MissingApiKeyError, abr.SettingsError, abr.JobNotFoundError) as error:
        print(error)
        return
    except (abr.StoreFullError, abr.StoreUnavailableError) as error:
        print(error)
        return
    except abr.LocalFaultError as error:
        print(error.path, error.cause)
        return
    except (abr.BudgetExceededError, abr.ApiError, abr.StoreError) as error:
        print(error)
        return
    except abr.UsageError as error:
        print(error.exit_code)
        return
    except abr.AbrError:
        raise

    submitted = abr.submit(
        {"system_prompt": "Be brief.", "messages_list": [[{"role": "user", "content": "Hi"}]]},
        settings=Path("settings.yaml"),
        progress=False,
        name="greeting",
    )
    submitted.wait(timeout=60.0, progress=False)
    summary: dict[str, Any] = submitted.summary()
    print(summary["status"], submitted.existing, submitted.total, submitted.created_at)
    print(submitted.finished_at, submitted.canary())
    with open("out.jsonl", "w") as handle:
        submitted.write_results(handle, format="jsonl")
    results: list[abr.Result] = list(job.results(status=["succeeded", "errored"]))
    text: str | None = results[0].text
    cost: float | None = job.cost_usd
    usage: abr.Usage = job.usage
    print(text, cost, usage.input_tokens, job.status().as_dict(), job.results_path)
    again: abr.Job = abr.job(job.id, settings=settings).resume(wait=False)
    canceled: list[str] = again.cancel()
    every: list[abr.Job] = abr.jobs()
    retried: int = every[0].retry(["errored"], max_cost=0.5)
    frame: Any = job.to_pandas()
    print(canceled, retried, frame, abr.__version__)


if __name__ == "__main__":
    main()

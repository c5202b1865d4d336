"""Fault injection: each fault at its fraction, reproducibly, and what the SDK sees."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import anthropic
import httpx2
import pytest

from anthropic_batch_request_util.emulator import Emulator

from .helpers import HEADERS, raw, requests, sync_client, wait_ended

DRAWS = 2000  #: requests or rows per statistical check
FRACTION = 0.2
TOLERANCE = 90  #: about 5 standard deviations of a binomial(2000, 0.2) count


def http_outcomes(emu: Emulator, count: int) -> list[str]:
    """Send `count` cheap API requests; the status (or "dropped") of each, in order."""
    outcomes = []
    with raw(emu) as http:
        for _ in range(count):
            try:
                outcomes.append(
                    str(http.get("/v1/messages/batches?limit=1", headers=HEADERS).status_code)
                )
            except httpx2.TransportError:
                outcomes.append("dropped")
    return outcomes


def row_outcomes(client: anthropic.Anthropic, sent: list[dict[str, object]]) -> dict[str, str]:
    """custom_id → result type (with the error type for errored rows) of a finished batch."""
    batch = client.messages.batches.create(requests=sent)
    wait_ended(client, batch.id)
    outcomes = {}
    for line in client.messages.batches.results(batch.id):
        kind = line.result.type
        if line.result.type == "errored":
            kind = line.result.error.error.type
        outcomes[line.custom_id] = kind
    return outcomes


def test_http_faults_fire_at_their_fractions(make_emu: Callable[..., Emulator]) -> None:
    fractions = {"http_429": 0.1, "http_529": 0.1, "http_500": 0.1, "drop_before": 0.05}
    emu = make_emu(faults={**fractions, "drop_after": 0.05})

    counts = Counter(http_outcomes(emu, DRAWS))

    for status in ("429", "529", "500"):
        assert abs(counts[status] - 200) < 70, counts
    assert abs(counts["dropped"] - 200) < 70, counts
    assert counts["200"] == DRAWS - sum(counts[s] for s in ("429", "529", "500", "dropped"))
    injected = emu.stats()["http_faults_injected"]
    assert injected["http_429"] == counts["429"] and injected["http_500"] == counts["500"]
    assert injected["drop_before"] + injected["drop_after"] == counts["dropped"]


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [("http_429", "429"), ("http_529", "529"), ("http_500", "500"), ("drop_after", "dropped")],
)
def test_each_http_fault_alone_fires_at_its_fraction(
    make_emu: Callable[..., Emulator], fault: str, outcome: str
) -> None:
    draws = 600  # the 2,000-draw checks are above and in test_units (pure draws)
    emu = make_emu(faults={fault: FRACTION})
    outcomes = Counter(http_outcomes(emu, draws))
    assert abs(outcomes[outcome] - draws * FRACTION) < 50  # about 5 standard deviations
    assert outcomes[outcome] + outcomes["200"] == draws


def test_the_same_seed_gives_the_same_http_faults(make_emu: Callable[..., Emulator]) -> None:
    runs = [http_outcomes(make_emu(seed=11, faults={"http_500": 0.3}), 300) for _ in range(2)]
    other = http_outcomes(make_emu(seed=12, faults={"http_500": 0.3}), 300)
    assert runs[0] == runs[1]
    assert runs[0] != other


def test_http_faults_map_to_sdk_errors(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(retry_after=2.5)
    with sync_client(emu) as client:
        for fault, error in [
            ("http_429", anthropic.RateLimitError),
            ("http_529", anthropic.OverloadedError),
            ("http_500", anthropic.InternalServerError),
        ]:
            emu.set_faults(**{fault: 1.0})
            with pytest.raises(error) as caught:
                client.messages.batches.list()
            emu.set_faults(**{fault: 0.0})
            assert caught.value.body["type"] == "error"
            if fault == "http_429":
                assert caught.value.response.headers["retry-after"] == "2.5"


def test_the_sdk_retries_through_a_429(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(seed=1, retry_after=0.01, faults={"http_429": 0.5})
    with anthropic.Anthropic(base_url=emu.base_url, api_key="k", max_retries=8) as client:
        for _ in range(5):
            client.messages.batches.list()
    assert emu.stats()["http_faults_injected"]["http_429"] > 0


def test_admin_endpoints_never_fault(make_emu: Callable[..., Emulator]) -> None:
    everything = dict.fromkeys(["http_429", "http_529", "http_500", "drop_before"], 0.25)
    emu = make_emu(faults=everything)
    with raw(emu) as http:
        statuses = {http.get("/_admin/stats").status_code for _ in range(50)}
    assert statuses == {200}


def test_drop_after_creates_the_batch_but_the_client_never_hears(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(faults={"drop_after": 1.0})
    with sync_client(emu) as client:
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.create(requests=requests(3))
        emu.set_faults(drop_after=0.0)
        [batch] = client.messages.batches.list().data
    stats = emu.stats()
    assert stats["batches_created"] == 1 and stats["requests_submitted"] == 3
    assert batch.request_counts.processing + batch.request_counts.succeeded == 3


def test_drop_before_creates_nothing(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(faults={"drop_before": 1.0})
    with sync_client(emu) as client, pytest.raises(anthropic.APIConnectionError):
        client.messages.batches.create(requests=requests(3))
    assert emu.stats()["batches_created"] == 0


def test_a_cut_results_stream_raises_in_the_sdk_iterator(emu: Emulator) -> None:
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(40))
        wait_ended(client, batch.id)
        emu.set_faults(results_cut=1.0)
        received = []
        with pytest.raises(httpx2.RemoteProtocolError):
            for line in client.messages.batches.results(batch.id):
                received.append(line.custom_id)
        emu.set_faults(results_cut=0.0)
        complete = [line.custom_id for line in client.messages.batches.results(batch.id)]
    assert received == complete[:20]  # whole lines before the cut are intact
    assert emu.stats()["http_faults_injected"]["results_cut"] == 1


def test_results_cut_fires_at_its_fraction(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(faults={"results_cut": 0.3})
    with sync_client(emu) as client, raw(emu) as http:
        batch = wait_ended(client, client.messages.batches.create(requests=requests(2)).id)
        cuts = 0
        for _ in range(300):
            try:
                http.get(batch.results_url, headers=HEADERS).read()
            except httpx2.TransportError:
                cuts += 1
    assert abs(cuts - 90) < 40


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("row_api_error", "api_error"),
        ("row_overloaded", "overloaded_error"),
        ("row_invalid", "invalid_request_error"),
        ("row_expired", "expired"),
    ],
)
def test_each_row_fault_fires_at_its_fraction(
    make_emu: Callable[..., Emulator], fault: str, outcome: str
) -> None:
    emu = make_emu(faults={fault: FRACTION})
    with sync_client(emu) as client:
        outcomes = Counter(row_outcomes(client, requests(DRAWS)).values())
    assert abs(outcomes[outcome] - DRAWS * FRACTION) < TOLERANCE
    assert outcomes["succeeded"] == DRAWS - outcomes[outcome]
    assert emu.stats()["row_faults_injected"][fault] == outcomes[outcome]


def test_row_faults_share_one_draw_in_disjoint_slices(make_emu: Callable[..., Emulator]) -> None:
    names = ["row_api_error", "row_overloaded", "row_invalid", "row_expired"]
    emu = make_emu(faults=dict.fromkeys(names, 0.1))
    with sync_client(emu) as client:
        outcomes = Counter(row_outcomes(client, requests(DRAWS)).values())
    for outcome in ("api_error", "overloaded_error", "invalid_request_error", "expired"):
        assert abs(outcomes[outcome] - 200) < 70, outcomes


def test_row_outcomes_depend_only_on_seed_and_submission_history(
    make_emu: Callable[..., Emulator],
) -> None:
    faults = {"row_api_error": 0.3, "row_expired": 0.2}
    histories = []
    for seed in (5, 5, 6):
        emu = make_emu(seed=seed, faults=faults)
        with sync_client(emu) as client:
            first = row_outcomes(client, requests(200))
            second = row_outcomes(client, requests(200))  # the same custom ids again
        histories.append((first, second))
        assert emu.stats()["max_submissions"] == 2
    assert histories[0] == histories[1]
    assert histories[0] != histories[2]
    first, second = histories[0]
    changed = sum(first[custom_id] != second[custom_id] for custom_id in first)
    assert changed > 40  # a resubmitted request gets a fresh draw


def test_faults_change_while_running(emu: Emulator) -> None:
    with raw(emu) as http:
        changed = http.post("/_admin/faults", json={"http_500": 1.0})
        failing = http.get("/v1/messages/batches", headers=HEADERS).status_code
        emu.set_faults(http_500=0.0, row_invalid=0.5)
        current = http.get("/_admin/faults").json()
        working = http.get("/v1/messages/batches", headers=HEADERS).status_code
    assert changed.status_code == 200 and changed.json()["http_500"] == 1.0
    assert set(changed.json()) == {
        "http_429", "http_529", "http_500", "drop_before", "drop_after", "results_cut",
        "stream_error", "stream_cut",
        "row_api_error", "row_overloaded", "row_invalid", "row_expired",
    }  # fmt: skip
    assert (failing, working) == (500, 200)
    assert current["row_invalid"] == 0.5 and current["http_500"] == 0.0


@pytest.mark.parametrize(
    "body", [{"http_999": 0.1}, {"http_500": 1.5}, {"http_500": "half"}, [1], "nonsense"]
)
def test_bad_fault_settings_are_400(emu: Emulator, body: object) -> None:
    with raw(emu) as http:
        response = http.post("/_admin/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert emu.stats()["faults"]["http_500"] == 0.0


def test_set_faults_rejects_unknown_names(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        emu.set_faults(http_404=0.5)

"""The `/_admin` endpoints: statistics that prove nothing was paid for twice, expiry, reset."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest

from anthropic_batch_request_util.emulator import Emulator

from .helpers import raw, requests, sync_client, wait_ended


def test_stats_count_batches_requests_and_resubmissions(
    emu: Emulator, client: anthropic.Anthropic
) -> None:
    # Given three batches, the last one resubmitting two custom ids of the first
    client.messages.batches.create(requests=requests(3))
    client.messages.batches.create(requests=requests(2, "other"))
    client.messages.batches.create(requests=requests(2))

    # When the statistics are read, over HTTP (no key needed) and in process
    with raw(emu) as http:
        over_http = http.get("/_admin/stats").json()
        with_map = http.get("/_admin/stats?submissions=1").json()

    # Then they count every submission of every custom id
    in_process = emu.stats()
    assert over_http.pop("batches_by_status").keys() == in_process.pop("batches_by_status").keys()
    assert over_http == in_process
    assert over_http["batches_created"] == 3
    assert over_http["requests_submitted"] == 7
    assert over_http["distinct_custom_ids"] == 5
    assert over_http["max_submissions"] == 2
    assert over_http["submissions_over_1"] == {"req-0": 2, "req-1": 2}
    assert "submissions" not in over_http
    assert with_map["submissions"] == {
        "req-0": 2, "req-1": 2, "req-2": 1, "other-0": 1, "other-1": 1,
    }  # fmt: skip
    assert with_map["submissions"] == emu.stats(submissions=True)["submissions"]
    assert set(over_http["faults"]) >= {"http_429", "row_expired", "results_cut"}
    assert over_http["http_faults_injected"]["http_500"] == 0


def test_stats_start_empty(emu: Emulator) -> None:
    stats = emu.stats()
    assert stats["batches_created"] == stats["requests_submitted"] == 0
    assert stats["max_submissions"] == 0 and stats["submissions_over_1"] == {}


def test_a_rejected_create_counts_nothing(emu: Emulator, client: anthropic.Anthropic) -> None:
    sent = [*requests(2), *requests(1)]  # a duplicate custom id: the create fails
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=sent)
    assert emu.stats()["requests_submitted"] == 0 and emu.stats()["batches_created"] == 0


def test_admin_expire_over_http(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(processing_seconds=3600)
    with sync_client(emu) as client, raw(emu) as http:
        one = client.messages.batches.create(requests=requests(2)).id
        two = client.messages.batches.create(requests=requests(2, "b")).id
        first = http.post("/_admin/expire", json={"batch_id": one}).json()
        rest = http.post("/_admin/expire").json()
        again = http.post("/_admin/expire").json()
        unknown = http.post("/_admin/expire", json={"batch_id": "msgbatch_01nope"})
        ended = wait_ended(client, two)
    assert first == {"expired": [one]}
    assert rest == {"expired": [two]}
    assert again == {"expired": []}
    assert unknown.status_code == 404
    assert ended.request_counts.expired == 2


def test_admin_finish_ends_batches_as_if_processed(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(processing_seconds=3600)
    with sync_client(emu) as client, raw(emu) as http:
        one = client.messages.batches.create(requests=requests(3)).id
        two = client.messages.batches.create(requests=requests(2, "b")).id
        assert emu.finish(one) == [one]
        rest = http.post("/_admin/finish").json()
        ended = [wait_ended(client, batch_id) for batch_id in (one, two)]
    assert rest == {"finished": [two]}
    assert [batch.request_counts.succeeded for batch in ended] == [3, 2]


def test_reset_forgets_everything(emu: Emulator, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests(2))
    emu.set_faults(http_500=0.0, row_expired=0.5)
    with raw(emu) as http:
        assert http.post("/_admin/reset").json() == {"reset": True}
    try:
        client.messages.batches.retrieve(batch.id)
        raise AssertionError("a reset emulator must forget its batches")
    except anthropic.NotFoundError:
        pass
    stats = emu.stats()
    assert stats["batches_created"] == 0 and stats["distinct_custom_ids"] == 0
    assert stats["faults"]["row_expired"] == 0.0  # back to the configured faults


def test_unknown_admin_paths_are_404(emu: Emulator) -> None:
    with raw(emu) as http:
        response = http.get("/_admin/nothing")
        wrong_method = http.get("/_admin/reset")
    assert response.status_code == wrong_method.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"

"""The Message Batches endpoints through the sync SDK: shapes, lifecycle, results, listing."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anthropic
import orjson
import pytest

from anthropic_batch_request_util.emulator import Emulator, reply_text

from .helpers import OLD_VERSION, params, raw, requests, sync_client, wait_ended

BATCH_ID = re.compile(r"msgbatch_01[1-9A-HJ-NP-Za-km-z]{22}")
MESSAGE_ID = re.compile(r"msg_01[1-9A-HJ-NP-Za-km-z]{22}")
REQUEST_ID = re.compile(r"req_01[1-9A-HJ-NP-Za-km-z]{22}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
BATCH_FIELDS = {
    "id", "type", "processing_status", "request_counts", "ended_at", "created_at",
    "expires_at", "cancel_initiated_at", "archived_at", "results_url",
}  # fmt: skip


def test_create_answers_an_in_progress_batch_in_the_api_shape(
    client: anthropic.Anthropic,
) -> None:
    response = client.messages.batches.with_raw_response.create(requests=requests(3))
    body = orjson.loads(response.read())

    assert set(body) == BATCH_FIELDS
    assert BATCH_ID.fullmatch(body["id"])
    assert REQUEST_ID.fullmatch(response.headers["request-id"])
    assert body["type"] == "message_batch"
    assert body["processing_status"] == "in_progress"
    assert body["request_counts"] == {
        "processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0,
    }  # fmt: skip
    assert TIMESTAMP.fullmatch(body["created_at"])
    assert TIMESTAMP.fullmatch(body["expires_at"])
    assert body["ended_at"] is None
    assert body["results_url"] is None
    assert body["archived_at"] is None and body["cancel_initiated_at"] is None


def test_a_batch_ends_after_processing_seconds_with_the_terminal_tally(
    client: anthropic.Anthropic,
) -> None:
    batch = client.messages.batches.create(requests=requests(4))

    ended = wait_ended(client, batch.id)

    assert ended.request_counts.succeeded == 4
    assert ended.request_counts.processing == 0
    assert ended.ended_at is not None and ended.ended_at >= ended.created_at
    assert (ended.expires_at - ended.created_at).total_seconds() == 86_400


def test_every_result_belongs_to_its_request(emu: Emulator, client: anthropic.Anthropic) -> None:
    sent = requests(20)
    batch = client.messages.batches.create(requests=sent)
    ended = wait_ended(client, batch.id)

    results = {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}

    assert ended.results_url == f"{emu.base_url}/v1/messages/batches/{batch.id}/results"
    assert set(results) == {request["custom_id"] for request in sent}
    for request in sent:
        result = results[request["custom_id"]]
        assert result.type == "succeeded"
        assert result.message.content[0].text == reply_text(request["params"])
        assert MESSAGE_ID.fullmatch(result.message.id)
        assert result.message.usage.service_tier == "batch"
        assert result.message.stop_reason == "end_turn"


def test_results_stream_is_jsonl_without_blank_lines_in_a_seeded_order(
    make_emu: Callable[..., Emulator],
) -> None:
    orders = []
    for _ in range(2):
        emu = make_emu(seed=3)
        with sync_client(emu) as client, raw(emu) as http:
            batch = wait_ended(client, client.messages.batches.create(requests=requests(30)).id)
            body = http.get(batch.results_url, headers={"x-api-key": "k", **OLD_VERSION}).content
        lines = body.split(b"\n")
        assert lines[-1] == b"" and all(lines[:-1])
        orders.append([orjson.loads(line)["custom_id"] for line in lines[:-1]])

    assert orders[0] == orders[1]
    assert orders[0] != [f"req-{i}" for i in range(30)]  # shuffled, deterministically


def test_results_keep_request_order_when_shuffling_is_off(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(shuffle_results=False)
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(10))
        wait_ended(client, batch.id)
        ids = [line.custom_id for line in client.messages.batches.results(batch.id)]
    assert ids == [f"req-{i}" for i in range(10)]


def test_results_url_follows_the_host_the_client_used(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu()
    localhost = emu.base_url.replace("127.0.0.1", "localhost")
    with anthropic.Anthropic(base_url=localhost, api_key="k", max_retries=0) as client:
        batch = wait_ended(client, client.messages.batches.create(requests=requests(1)).id)
    assert batch.results_url.startswith(f"{localhost}/v1/messages/batches/")


def test_public_url_sets_the_results_url(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(public_url="http://emulator.example:9999/")
    with anthropic.Anthropic(base_url=emu.local_url, api_key="k", max_retries=0) as client:
        batch = wait_ended(client, client.messages.batches.create(requests=requests(1)).id)
    assert emu.base_url == "http://emulator.example:9999"
    assert (
        batch.results_url == f"http://emulator.example:9999/v1/messages/batches/{batch.id}/results"
    )


def test_list_is_newest_first_and_pages_both_ways(client: anthropic.Anthropic) -> None:
    created = [client.messages.batches.create(requests=requests(1)).id for _ in range(5)]
    newest_first = created[::-1]

    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2]
    assert first.has_more is True
    assert (first.first_id, first.last_id) == (newest_first[0], newest_first[1])

    older = client.messages.batches.list(limit=2, after_id=first.last_id)
    assert [b.id for b in older.data] == newest_first[2:4]
    last = client.messages.batches.list(limit=2, after_id=older.last_id)
    assert [b.id for b in last.data] == newest_first[4:] and last.has_more is False

    newer = client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in newer.data] == newest_first[2:4] and newer.has_more is True
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-paging
    everything = client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert {b.id for b in everything} == set(newest_first[:4])  # auto-paging with before_id


def test_list_defaults_to_twenty_and_reports_empty_pages(client: anthropic.Anthropic) -> None:
    empty = client.messages.batches.list()
    assert empty.data == [] and empty.has_more is False and empty.first_id is None

    for _ in range(21):
        client.messages.batches.create(requests=requests(1))
    page = client.messages.batches.list()

    assert len(page.data) == 20 and page.has_more is True


def test_cancel_goes_through_canceling_to_ended_with_canceled_rows(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(processing_seconds=4.0, cancel_seconds=1.0)
    with sync_client(emu) as client:
        # Given a batch some way through processing
        batch = client.messages.batches.create(requests=requests(100))
        time.sleep(0.3)
        # When it is canceled
        canceling = client.messages.batches.cancel(batch.id)
        # Then it is canceling, still counting every request as processing
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at is not None
        assert canceling.request_counts.processing == 100
        assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
        # And it ends a cancel_seconds later: what was done by the cancel kept, the rest canceled
        ended = wait_ended(client, batch.id)
        elapsed = (canceling.cancel_initiated_at - batch.created_at).total_seconds()
        counts = ended.request_counts
        assert abs(counts.succeeded - 100 * elapsed / 4.0) < 1  # the share done by the cancel
        assert counts.canceled == 100 - counts.succeeded > 0
        canceling_for = (ended.ended_at - canceling.cancel_initiated_at).total_seconds()
        assert canceling_for == pytest.approx(1.0, abs=1e-5)
        canceled = [
            r for r in client.messages.batches.results(batch.id) if r.result.type == "canceled"
        ]
        assert len(canceled) == counts.canceled


def test_canceled_rows_are_the_last_requests(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(processing_seconds=4.0, cancel_seconds=0.0)
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(50))
        time.sleep(0.5)
        client.messages.batches.cancel(batch.id)
        wait_ended(client, batch.id)
        types = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
    done = sum(kind == "succeeded" for kind in types.values())
    assert [types[f"req-{i}"] for i in range(50)] == ["succeeded"] * done + ["canceled"] * (
        50 - done
    )


def test_admin_expiry_ends_unfinished_batches_with_expired_rows(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(processing_seconds=3600)
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(5))
        finished_later = client.messages.batches.create(requests=requests(2, "other"))

        assert emu.expire(batch.id) == [batch.id]

        ended = wait_ended(client, batch.id)
        assert ended.request_counts.expired == 5
        assert ended.expires_at <= ended.ended_at
        assert {r.result.type for r in client.messages.batches.results(batch.id)} == {"expired"}
        still = client.messages.batches.retrieve(finished_later.id)
        assert still.processing_status == "in_progress"


def test_the_expiry_clock_ends_a_slow_batch(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(processing_seconds=3600, expire_after_seconds=0.2)
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(3))
        assert batch.processing_status == "in_progress"
        ended = wait_ended(client, batch.id)
    assert ended.request_counts.expired == 3


def test_delete_works_only_once_a_batch_has_ended(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(processing_seconds=3600)
    with sync_client(emu) as client:
        batch = client.messages.batches.create(requests=requests(2))
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.batches.delete(batch.id)
        emu.expire(batch.id)
        wait_ended(client, batch.id)
        deleted = client.messages.batches.delete(batch.id)
        assert batch.id not in {b.id for b in client.messages.batches.list()}
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(batch.id)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.delete(batch.id)

    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"


def test_bad_params_become_errored_rows_with_the_double_error_envelope(
    client: anthropic.Anthropic,
) -> None:
    bad = {
        "no-model": {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        "zero-tokens": params(max_tokens=0),
        "no-messages": params(messages=[]),
        "bad-role": params(messages=[{"role": "robot", "content": "hi"}]),
        "streaming": params(stream=True),
        "temperature": params(temperature=0.5),
        "top-k": params(top_k=5),
    }
    sent = [{"custom_id": cid, "params": body} for cid, body in bad.items()]
    sent.append({"custom_id": "fine", "params": params()})
    batch = client.messages.batches.create(requests=sent)

    ended = wait_ended(client, batch.id)
    lines = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}

    assert ended.request_counts.errored == len(bad) and ended.request_counts.succeeded == 1
    for custom_id in bad:
        error = lines[custom_id].error
        assert error.type == "error" and error.error.type == "invalid_request_error"
    assert lines["no-model"].error.error.message == "model: Field required"
    assert lines["zero-tokens"].error.error.message == (
        "max_tokens: Input should be greater than or equal to 1"
    )
    assert lines["temperature"].error.error.message.startswith("temperature:")
    assert lines["fine"].type == "succeeded"


def test_sampling_params_are_accepted_with_the_older_api_version(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu()
    with sync_client(emu, default_headers=OLD_VERSION) as client:
        sent = [{"custom_id": "warm", "params": params(temperature=0.7, top_p=0.9, top_k=3)}]
        batch = client.messages.batches.create(requests=sent)
        wait_ended(client, batch.id)
        [line] = list(client.messages.batches.results(batch.id))
    assert line.result.type == "succeeded"


def test_a_reply_longer_than_max_tokens_is_cut(client: anthropic.Anthropic) -> None:
    body = params(max_tokens=3)
    batch = client.messages.batches.create(requests=[{"custom_id": "short", "params": body}])
    wait_ended(client, batch.id)

    [line] = list(client.messages.batches.results(batch.id))

    message = line.result.message
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    assert message.content[0].text == reply_text(body).encode()[:12].decode()


def test_a_json_request_gets_a_json_object_reply(client: anthropic.Anthropic) -> None:
    body = params("List three colors as JSON.")
    batch = client.messages.batches.create(requests=[{"custom_id": "json", "params": body}])
    wait_ended(client, batch.id)

    [line] = list(client.messages.batches.results(batch.id))

    text = line.result.message.content[0].text
    assert text == reply_text(body)
    reply = orjson.loads(text)
    assert isinstance(reply, dict) and reply["question"] == "List three colors as JSON."


def test_replies_survive_quotes_escapes_and_unicode(client: anthropic.Anthropic) -> None:
    questions = ['Say "hi" \\ now', "Tab\there", "Ünïcødé ✓ 漢字 🙂 " * 3, "%s %d {x}", 'json: "q"']
    sent = [{"custom_id": f"q{i}", "params": params(q)} for i, q in enumerate(questions)]
    sent.append({"custom_id": "cut", "params": params(questions[2], max_tokens=5)})
    batch = client.messages.batches.create(requests=sent)
    wait_ended(client, batch.id)

    texts = {
        r.custom_id: r.result.message.content[0].text
        for r in client.messages.batches.results(batch.id)
    }

    assert texts == {
        r["custom_id"]: reply_text(r["params"])
        if r["custom_id"] != "cut"
        else reply_text(r["params"]).encode()[:20].decode(errors="ignore")
        for r in sent
    }


def test_usage_counts_tokens_by_the_documented_rule(client: anthropic.Anthropic) -> None:
    body = params("x" * 40, system="s" * 12)
    batch = client.messages.batches.create(requests=[{"custom_id": "u", "params": body}])
    wait_ended(client, batch.id)

    [line] = list(client.messages.batches.results(batch.id))

    usage = line.result.message.usage
    assert usage.input_tokens == 10 + 3  # ceil(40 / 4) + ceil(12 / 4)
    assert usage.output_tokens == -(-len(reply_text(body).encode()) // 4)
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


def test_concurrent_clients_each_get_their_own_results(emu: Emulator) -> None:
    def submit(worker: int) -> list[str]:
        with sync_client(emu) as client:
            made = []
            for round_ in range(3):
                sent = requests(50, f"w{worker}r{round_}")
                batch = client.messages.batches.create(requests=sent)
                wait_ended(client, batch.id)
                got = {r.custom_id for r in client.messages.batches.results(batch.id)}
                assert got == {r["custom_id"] for r in sent}
                made.append(batch.id)
            return made

    with ThreadPoolExecutor(max_workers=6) as pool:
        batch_ids = [i for ids in pool.map(submit, range(6)) for i in ids]

    stats = emu.stats()
    assert len(set(batch_ids)) == 18 == stats["batches_created"]
    assert stats["requests_submitted"] == stats["distinct_custom_ids"] == 900

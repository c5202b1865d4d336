"""Every error the emulator answers with, in the API's envelope and status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from anthropic import Omit

from anthropic_batch_request_util.emulator import Emulator

from .helpers import HEADERS, KEY, OLD_VERSION, params, raw, requests, sync_client, wait_ended


def error_of(call: Callable[[], Any], kind: type[anthropic.APIStatusError]) -> dict[str, Any]:
    """The error object of the API error `call` raises, checked to be of `kind`."""
    with pytest.raises(kind) as caught:
        call()
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["request_id"] == caught.value.request_id
    assert caught.value.request_id and caught.value.request_id.startswith("req_01")
    error: dict[str, Any] = body["error"]
    return error


def test_a_missing_api_key_is_401(emu: Emulator) -> None:
    no_key = {"Authorization": Omit(), "X-Api-Key": Omit()}
    with sync_client(emu, default_headers=no_key) as client:
        error = error_of(client.messages.batches.list, anthropic.AuthenticationError)
    assert error == {"type": "authentication_error", "message": "invalid x-api-key"}


def test_the_key_is_taken_from_x_api_key_or_bearer(emu: Emulator) -> None:
    with raw(emu) as http:
        by_header = http.get("/v1/messages/batches", headers={"x-api-key": KEY, **OLD_VERSION})
        by_bearer = http.get("/v1/messages/batches", headers=HEADERS)
        by_nothing = http.get("/v1/messages/batches", headers=OLD_VERSION)
    assert (by_header.status_code, by_bearer.status_code, by_nothing.status_code) == (200, 200, 401)
    assert by_nothing.headers["request-id"] == by_nothing.json()["request_id"]


def test_a_refused_request_with_a_body_does_not_confuse_the_next_one(emu: Emulator) -> None:
    with raw(emu) as http:
        refused = http.post("/v1/messages/batches", json={"requests": []}, headers=OLD_VERSION)
        accepted = http.post("/v1/messages", json=params(), headers=HEADERS)
        chunked = http.post(
            "/v1/messages", content=iter([b'{"model":"m","max_tokens":5,', b'"messages":[]}']),
            headers=HEADERS,
        )  # fmt: skip
    assert refused.status_code == 401 and refused.headers["connection"] == "close"
    assert accepted.status_code == 200
    assert chunked.status_code == 400
    assert "messages: List should have at least 1 item" in chunked.json()["error"]["message"]


def test_a_configured_key_is_the_only_one_accepted(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(api_key="sk-right")
    with anthropic.Anthropic(base_url=emu.base_url, api_key="sk-wrong", max_retries=0) as wrong:
        error_of(wrong.messages.batches.list, anthropic.AuthenticationError)
    with anthropic.Anthropic(base_url=emu.base_url, api_key="sk-right", max_retries=0) as right:
        assert right.messages.batches.list().data == []


def test_anthropic_version_is_required_and_must_be_known(emu: Emulator) -> None:
    with sync_client(emu, default_headers={"anthropic-version": Omit()}) as client:
        missing = error_of(client.messages.batches.list, anthropic.BadRequestError)
    with sync_client(emu, default_headers={"anthropic-version": "1999-01-01"}) as client:
        unknown = error_of(client.messages.batches.list, anthropic.BadRequestError)
    assert missing == {
        "type": "invalid_request_error", "message": "anthropic-version: header is required",
    }  # fmt: skip
    assert unknown["type"] == "invalid_request_error" and "1999-01-01" in unknown["message"]


@pytest.mark.parametrize("version", ["2023-01-01", "2023-06-01", "2026-10-21"])
def test_every_published_version_is_accepted(emu: Emulator, version: str) -> None:
    with sync_client(emu, default_headers={"anthropic-version": version}) as client:
        assert client.messages.batches.list().data == []


def test_beta_headers_and_query_flags_are_ignored(emu: Emulator) -> None:
    with sync_client(emu) as client:
        batch = client.beta.messages.batches.create(
            requests=requests(1), betas=["message-batches-2024-09-24", "made-up-beta-2099"]
        )
        found = client.messages.batches.retrieve(batch.id, extra_query={"beta": "true"})
    assert found.id == batch.id


def test_unknown_batch_ids_are_404(client: anthropic.Anthropic) -> None:
    missing = "msgbatch_01AAAAAAAAAAAAAAAAAAAAAAAA"
    for call in (
        client.messages.batches.retrieve,
        client.messages.batches.cancel,
        client.messages.batches.delete,
    ):
        error = error_of(lambda call=call: call(missing), anthropic.NotFoundError)
        assert error["type"] == "not_found_error"


def test_unknown_paths_are_404_not_found(emu: Emulator) -> None:
    with raw(emu) as http:
        unknown = http.get("/v1/nothing/here", headers=HEADERS)
        wrong_method = http.put("/v1/messages/batches", headers=HEADERS)
        elsewhere = http.get("/", headers=HEADERS)
    for response in (unknown, wrong_method, elsewhere):
        assert response.status_code == 404
        assert response.json()["error"] == {"type": "not_found_error", "message": "Not found"}


def test_results_of_an_unknown_or_unfinished_batch_are_refused(
    make_emu: Callable[..., Emulator],
) -> None:
    emu = make_emu(processing_seconds=3600)
    with sync_client(emu) as client, raw(emu) as http:
        batch = client.messages.batches.create(requests=requests(1))
        early = http.get(f"/v1/messages/batches/{batch.id}/results", headers=HEADERS)
        unknown = http.get("/v1/messages/batches/msgbatch_01nope/results", headers=HEADERS)
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            client.messages.batches.results(batch.id)
    assert early.status_code == 400 and early.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404


def test_a_body_over_the_byte_limit_is_413(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(max_batch_bytes=4_000)
    with sync_client(emu) as client:
        error = error_of(
            lambda: client.messages.batches.create(requests=requests(40)),
            anthropic.RequestTooLargeError,
        )
        # the connection is still usable afterwards: the body was read, not abandoned
        assert client.messages.batches.create(requests=requests(2)).request_counts.processing == 2
    assert error["type"] == "request_too_large"


def test_a_messages_body_over_its_limit_is_413(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(max_message_bytes=1_000)
    with sync_client(emu) as client:
        error_of(
            lambda: client.messages.create(**params("x" * 2_000)),
            anthropic.RequestTooLargeError,
        )


@pytest.mark.parametrize(
    ("custom_id", "message"),
    [
        ("x" * 65, "requests.1.custom_id: String should have at most 64 characters"),
        ("", "requests.1.custom_id: String should have at least 1 character"),
        ("has space", "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
        ("trailing\n", "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
        (7, "requests.1.custom_id: Input should be a valid string"),
    ],
)
def test_a_bad_custom_id_fails_the_whole_create(
    client: anthropic.Anthropic, custom_id: Any, message: str
) -> None:
    sent = [*requests(1), {"custom_id": custom_id, "params": params()}]
    error = error_of(
        lambda: client.messages.batches.create(requests=sent), anthropic.BadRequestError
    )
    assert error == {"type": "invalid_request_error", "message": message}
    assert client.messages.batches.list().data == []


def test_a_64_character_custom_id_is_fine(client: anthropic.Anthropic) -> None:
    sent = [{"custom_id": "a-Z_9" * 12 + "abcd", "params": params()}]
    assert client.messages.batches.create(requests=sent).request_counts.processing == 1


def test_a_duplicate_custom_id_fails_the_whole_create(client: anthropic.Anthropic) -> None:
    sent = [*requests(3), {"custom_id": "req-1", "params": params()}]
    error = error_of(
        lambda: client.messages.batches.create(requests=sent), anthropic.BadRequestError
    )
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("requests.3.custom_id: Duplicate custom_id 'req-1'")


def test_request_count_limits(make_emu: Callable[..., Emulator]) -> None:
    emu = make_emu(max_requests_per_batch=5)
    with sync_client(emu) as client:
        too_many = error_of(
            lambda: client.messages.batches.create(requests=requests(6)),
            anthropic.BadRequestError,
        )
        none = error_of(
            lambda: client.messages.batches.create(requests=[]), anthropic.BadRequestError
        )
        assert client.messages.batches.create(requests=requests(5)).request_counts.processing == 5
    assert too_many["message"] == (
        "requests: List should have at most 5 items after validation, not 6"
    )
    assert none["message"] == "requests: List should have at least 1 item after validation, not 0"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "There was an issue with your request body"),
        (b"[1, 2]", "Input should be a valid dictionary"),
        (b"{}", "requests: Field required"),
        (b'{"requests": {}}', "requests: Input should be a valid list"),
        (b'{"requests": [7]}', "requests.0: Input should be a valid dictionary"),
        (b'{"requests": [{"custom_id": "a"}]}', "requests.0.params: Field required"),
    ],
)
def test_a_malformed_create_body_is_400(emu: Emulator, body: bytes, message: str) -> None:
    with raw(emu) as http:
        response = http.post("/v1/messages/batches", content=body, headers=HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


def test_cancel_of_an_ended_batch_is_400(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests(1))
    wait_ended(client, batch.id)
    error = error_of(lambda: client.messages.batches.cancel(batch.id), anthropic.BadRequestError)
    assert error["type"] == "invalid_request_error" and "ended" in error["message"]


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("0", "limit: Input should be greater than or equal to 1"),
        ("1001", "limit: Input should be less than or equal to 1000"),
        ("ten", "limit: Input should be a valid integer"),
    ],
)
def test_a_list_limit_out_of_range_is_400(emu: Emulator, limit: str, message: str) -> None:
    with raw(emu) as http:
        response = http.get(f"/v1/messages/batches?limit={limit}", headers=HEADERS)
    assert response.status_code == 400 and response.json()["error"]["message"] == message


def test_a_list_cursor_naming_no_batch_is_400(client: anthropic.Anthropic) -> None:
    error = error_of(
        lambda: client.messages.batches.list(after_id="msgbatch_01nothing"),
        anthropic.BadRequestError,
    )
    assert error["message"].startswith("after_id:")

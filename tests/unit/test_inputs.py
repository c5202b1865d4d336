"""Input files: both formats, defaults, every validation message, streaming."""

from __future__ import annotations

import dataclasses
import itertools
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from anthropic_batch_request_util.config import load_settings
from anthropic_batch_request_util.errors import InputError, UsageError
from anthropic_batch_request_util.inputs import (
    CUSTOM_ID_PATTERN,
    InputFormat,
    Request,
    RequestDefaults,
    checks,
    detect_format,
    read_requests,
    reader,
    request_defaults,
    validate_custom_id,
)
from anthropic_batch_request_util.inputs.checks import size_problem

DEFAULTS = RequestDefaults(
    model="claude-test-1",
    max_tokens=256,
    temperature=0.0,
    enable_prompt_cache=False,
    cache_type="ephemeral",
    max_request_bytes=1_000_000,
)
USER = {"role": "user", "content": "What is 2+2?"}
README_EXAMPLE = {
    "system_prompt": "You are a helpful AI assistant.",
    "messages_list": [
        [{"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "What is the capital of France?"}],
    ],
    "custom_id_prefix": "example_batch",
}


def write(path: Path, content: Any) -> Path:
    """Write `content` to `path`: bytes and str as they are, anything else as JSON."""
    if isinstance(content, str):
        content = content.encode()
    if not isinstance(content, bytes):
        content = orjson.dumps(content)
    path.write_bytes(content)
    return path


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """One line per item: str as it is, anything else as JSON."""
    text = "\n".join(
        line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines
    )
    return write(path, text + "\n")


def read_all(
    path: Path, defaults: RequestDefaults = DEFAULTS, **options: Any
) -> tuple[list[Request], list[str]]:
    """The requests yielded before the end, and the problems raised at the end (if any)."""
    got: list[Request] = []
    try:
        for request in read_requests(path, defaults, **options):
            got.append(request)
    except InputError as exc:
        assert exc.path == str(path)
        return got, exc.problems
    return got, []


def params_of(request: Request) -> dict[str, Any]:
    body = orjson.loads(request.body)
    assert set(body) == {"custom_id", "params"}
    assert body["custom_id"] == request.custom_id
    params: dict[str, Any] = body["params"]
    return params


# --- the original format ----------------------------------------------------------------------


def test_original_format_gives_prefixed_ids_and_params_from_the_settings(tmp_path: Path) -> None:
    got, problems = read_all(write(tmp_path / "batch.json", README_EXAMPLE))

    assert problems == []
    assert [(r.index, r.custom_id) for r in got] == [(0, "example_batch_0"), (1, "example_batch_1")]
    assert params_of(got[1]) == {
        "model": "claude-test-1",
        "max_tokens": 256,
        "system": "You are a helpful AI assistant.",
        "temperature": 0.0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }


def test_original_body_is_the_orjson_bytes_of_the_batch_request(tmp_path: Path) -> None:
    got, _ = read_all(write(tmp_path / "batch.json", README_EXAMPLE))

    expected = {
        "custom_id": "example_batch_0",
        "params": {
            "model": "claude-test-1",
            "max_tokens": 256,
            "system": "You are a helpful AI assistant.",
            "temperature": 0.0,
            "messages": [{"role": "user", "content": "What is 2+2?"}],
        },
    }
    assert got[0].body == orjson.dumps(expected)


@pytest.mark.parametrize("order", list(itertools.permutations(README_EXAMPLE)))
def test_original_keys_may_come_in_any_order(tmp_path: Path, order: tuple[str, ...]) -> None:
    reordered = {key: README_EXAMPLE[key] for key in order}
    pretty = orjson.dumps(reordered, option=orjson.OPT_INDENT_2)
    expected, _ = read_all(write(tmp_path / "a.json", README_EXAMPLE))

    got, problems = read_all(write(tmp_path / "b.json", pretty))

    assert problems == []
    assert got == expected


def test_original_unknown_top_level_keys_are_ignored(tmp_path: Path) -> None:
    document = {"note": {"custom_id_prefix": "nested"}, "": 1, **README_EXAMPLE, "extra": [1]}

    got, problems = read_all(write(tmp_path / "batch.json", document))

    assert problems == []
    assert [r.custom_id for r in got] == ["example_batch_0", "example_batch_1"]


def test_original_key_given_twice_keeps_its_first_value(tmp_path: Path) -> None:
    # The header pass may stop before the end, so the first value is the one it can promise.
    text = '{"custom_id_prefix": "first", "messages_list": [[{"role": "user", "content": "x"}]],'
    text += ' "system_prompt": "s", "custom_id_prefix": "second"}'

    got, _ = read_all(write(tmp_path / "batch.json", text))

    assert [r.custom_id for r in got] == ["first_0"]


@pytest.mark.parametrize("prefix", [None, "absent"])
def test_original_prefix_defaults_to_request(tmp_path: Path, prefix: str | None) -> None:
    document: dict[str, Any] = {"messages_list": [[USER]]}
    if prefix != "absent":
        document["custom_id_prefix"] = prefix

    got, _ = read_all(write(tmp_path / "batch.json", document))

    assert [r.custom_id for r in got] == ["request_0"]


@pytest.mark.parametrize("system_prompt", [None, "", "absent"])
def test_original_without_a_system_prompt_sends_no_system(
    tmp_path: Path, system_prompt: str | None
) -> None:
    document: dict[str, Any] = {"messages_list": [[USER]]}
    if system_prompt != "absent":
        document["system_prompt"] = system_prompt

    got, _ = read_all(write(tmp_path / "batch.json", document))

    assert "system" not in params_of(got[0])


def test_prompt_cache_sends_the_system_prompt_as_one_cached_block(tmp_path: Path) -> None:
    defaults = dataclasses.replace(DEFAULTS, enable_prompt_cache=True, cache_type="ephemeral")

    got, _ = read_all(write(tmp_path / "batch.json", README_EXAMPLE), defaults)

    assert params_of(got[0])["system"] == [
        {
            "type": "text",
            "text": "You are a helpful AI assistant.",
            "cache_control": {"type": "ephemeral"},
        }
    ]


def test_temperature_none_is_not_sent(tmp_path: Path) -> None:
    defaults = dataclasses.replace(DEFAULTS, temperature=None)

    got, _ = read_all(write(tmp_path / "batch.json", README_EXAMPLE), defaults)

    assert "temperature" not in params_of(got[0])


def test_original_multi_turn_and_content_blocks_pass_through(tmp_path: Path) -> None:
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": None}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Score: 0.5?", "extra": {"n": 1.25}},
    ]

    got, problems = read_all(write(tmp_path / "b.json", {"messages_list": [conversation]}))

    assert problems == []
    assert params_of(got[0])["messages"] == conversation


def test_original_conversation_problems_are_located_and_valid_rows_still_yielded(
    tmp_path: Path,
) -> None:
    document = {
        "messages_list": [
            [USER],
            [{"role": "assistant", "content": "Hi"}],
            [USER, {"role": "system", "content": "Be brief"}],
            [],
            [{"role": "user", "content": ""}],
            [{"role": "user", "content": [{"type": "text", "text": "x"}, {"text": "no type"}]}],
            "What is 2+2?",
            [USER, "not a message"],
            [{"role": "user", "content": "   "}],
            [{"role": "user", "content": 42}],
            [USER],
        ]
    }

    got, problems = read_all(write(tmp_path / "batch.json", document))

    assert [r.index for r in got] == [0, 10]
    assert [r.custom_id for r in got] == ["request_0", "request_10"]
    assert problems == [
        'messages_list[1][0]: role must be "user"',
        'messages_list[2][1]: role must be "user" or "assistant"',
        "messages_list[3]: conversation is empty",
        "messages_list[4][0].content: must be a non-empty string or a list of content blocks",
        'messages_list[5][0].content[1]: must be an object with a "type"',
        "messages_list[6]: must be a list of messages",
        'messages_list[7][1]: must be an object with "role" and "content"',
        "messages_list[8][0].content: must be a non-empty string or a list of content blocks",
        "messages_list[9][0].content: must be a non-empty string or a list of content blocks",
    ]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"system_prompt": "x"}, "messages_list: missing"),
        ({"messages_list": {"a": [USER]}}, "messages_list: must be a list"),
        ({"messages_list": "[[...]]"}, "messages_list: must be a list"),
        ({"messages_list": [[USER]], "system_prompt": ["x"]}, "system_prompt: must be a string"),
        ({"messages_list": [[USER]], "custom_id_prefix": 7}, "custom_id_prefix: must be a string"),
        (
            {"messages_list": [[USER]], "custom_id_prefix": "a b"},
            'custom_id_prefix: "a b" does not match ^[a-zA-Z0-9_-]{1,64}$',
        ),
        (
            {"messages_list": [[USER]], "custom_id_prefix": "p" * 63},
            f'custom_id_prefix: "{"p" * 63}" leaves no room for "_<index>" within 64 characters',
        ),
        ([{"custom_id": "a", "params": {}}], 'must be one JSON object with "messages_list"'),
        ({"messages_list": []}, "no requests in the file"),
        ("   \n  ", "no requests in the file"),
        ("", "no requests in the file"),
    ],
)
def test_original_file_level_problems(tmp_path: Path, document: Any, problem: str) -> None:
    got, problems = read_all(write(tmp_path / "batch.json", document))

    assert got == []
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_header_problems_still_report_conversation_problems_but_yield_nothing(
    tmp_path: Path,
) -> None:
    document = {"custom_id_prefix": "bad prefix", "messages_list": [[USER], []]}

    got, problems = read_all(write(tmp_path / "batch.json", document))

    assert got == []
    assert problems == [
        'custom_id_prefix: "bad prefix" does not match ^[a-zA-Z0-9_-]{1,64}$',
        "messages_list[1]: conversation is empty",
    ]


def test_custom_id_over_64_characters_is_located(tmp_path: Path) -> None:
    prefix = "p" * 60  # "p..._999" is 64 characters, "p..._1000" is 65
    document = {"custom_id_prefix": prefix, "messages_list": [[USER]] * 1001}

    got, problems = read_all(write(tmp_path / "batch.json", document))

    assert len(got) == 1000
    assert got[-1].custom_id == f"{prefix}_999"
    assert problems == [
        f'messages_list[1000]: custom_id "{prefix}_1000" is longer than 64 characters'
    ]


def test_request_over_the_byte_limit_is_located(tmp_path: Path) -> None:
    big = {"role": "user", "content": "x" * 500}
    document = {"messages_list": [[USER], [big]]}
    full, _ = read_all(write(tmp_path / "a.json", document))
    limit = len(full[0].body) + 10

    got, problems = read_all(
        write(tmp_path / "b.json", document), dataclasses.replace(DEFAULTS, max_request_bytes=limit)
    )

    assert [r.index for r in got] == [0]
    size = len(full[1].body)
    assert problems == [f"messages_list[1]: {size_problem(size, limit)}"]
    assert problems[0].startswith(
        f"messages_list[1]: request is {size:,} bytes, over the {limit:,}-byte limit"
    )


def test_a_request_exactly_at_the_byte_limit_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "batch.json", README_EXAMPLE)
    full, _ = read_all(path)
    limit = max(len(r.body) for r in full)

    got, problems = read_all(path, dataclasses.replace(DEFAULTS, max_request_bytes=limit))

    assert (len(got), problems) == (2, [])


def test_invalid_json_names_the_byte_and_line(tmp_path: Path) -> None:
    text = '{"system_prompt": "s",\n "messages_list": [[{"role": "user", "content": "a"}],, []]}'

    got, problems = read_all(write(tmp_path / "batch.json", text))

    assert got == []
    offset = text.index(",,") + 1
    assert problems == [
        f"not valid JSON at byte {offset} (line 2): unallowed token at this point in JSON text"
    ]


def test_invalid_json_far_into_a_file_is_located_exactly(tmp_path: Path) -> None:
    # Given an error well past the first read, after the conversations (which come first)
    conversations = b",".join([orjson.dumps([USER])] * 5000)
    text = b'{"messages_list": [' + conversations + b'], "custom_id_prefix": tru}'
    assert len(text) > 2 * checks.READ_BYTES

    # When it is read
    got, problems = read_all(write(tmp_path / "batch.json", text))

    # Then nothing is yielded and the byte is the one where the parser gave up
    assert got == []
    assert len(problems) == 1
    offset = text.index(b"tru}") + 3
    assert problems[0].startswith(f"not valid JSON at byte {offset:,} (line 1): ")


def test_invalid_json_after_the_header_yields_the_rows_before_it(tmp_path: Path) -> None:
    # The header pass stops early when every key comes before the conversations.
    text = b'{"system_prompt": "s", "custom_id_prefix": "p", "messages_list": [' + (
        b",".join([orjson.dumps([USER])] * 3) + b", [}"
    )

    got, problems = read_all(write(tmp_path / "batch.json", text))

    assert [r.custom_id for r in got] == ["p_0", "p_1", "p_2"]
    assert len(problems) == 1
    assert problems[0].startswith(f"not valid JSON at byte {len(text) - 1} (line 1): ")


def test_truncated_file_is_premature_eof(tmp_path: Path) -> None:
    text = orjson.dumps(README_EXAMPLE)[:-2]

    _, problems = read_all(write(tmp_path / "batch.json", text))

    assert problems == [f"not valid JSON at byte {len(text)} (line 1): premature EOF"]


def test_invalid_utf8_is_invalid_json(tmp_path: Path) -> None:
    text = b'{"messages_list": [[{"role": "user", "content": "a\xffb"}]]}'

    _, problems = read_all(write(tmp_path / "batch.json", text))

    assert len(problems) == 1
    assert problems[0].startswith("not valid JSON at byte ")
    assert problems[0].endswith(": invalid bytes in UTF8 string")


@pytest.mark.parametrize("name", ["batch.json", "batch.jsonl", "batch"])
def test_a_utf8_byte_order_mark_is_skipped(tmp_path: Path, name: str) -> None:
    line = orjson.dumps({"custom_id": "a", "params": {"messages": [USER]}}) + b"\n"
    document = orjson.dumps({"custom_id_prefix": "a", "messages_list": [[USER]]})
    content = line if name != "batch.json" else document

    got, problems = read_all(write(tmp_path / name, b"\xef\xbb\xbf" + content))

    assert problems == []
    assert [r.custom_id for r in got] == ["a" if name != "batch.json" else "a_0"]


def test_json_error_offsets_count_the_byte_order_mark(tmp_path: Path) -> None:
    text = b'\xef\xbb\xbf{"messages_list": [[]], x}'

    _, problems = read_all(write(tmp_path / "batch.json", text))

    assert problems == [
        f"not valid JSON at byte {text.index(b'x')} (line 1): invalid char in json text"
    ]


def test_reading_stops_at_max_problems(tmp_path: Path) -> None:
    document = {"messages_list": [[]] * 10}

    got, problems = read_all(write(tmp_path / "batch.json", document), max_problems=3)

    assert got == []
    assert problems == [
        "messages_list[0]: conversation is empty",
        "messages_list[1]: conversation is empty",
        "messages_list[2]: conversation is empty",
        "stopped reading after 3 problems",
    ]


def test_input_error_message_names_the_file_and_the_first_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "batch.json", {"messages_list": [[]] * 7})

    with pytest.raises(InputError) as caught:
        list(read_requests(path, DEFAULTS))

    assert isinstance(caught.value, UsageError)
    message = str(caught.value)
    assert message.startswith(f"{path}: messages_list[0]: conversation is empty; ")
    assert message.endswith("; and 2 more")


# --- JSONL --------------------------------------------------------------------------------


def test_jsonl_fills_model_and_max_tokens_only_when_absent(tmp_path: Path) -> None:
    own = {"model": "claude-own", "max_tokens": 9, "messages": [USER]}
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"custom_id": "a", "params": {"messages": [USER]}},
            {"custom_id": "b", "params": own},
        ],
    )

    got, problems = read_all(path)

    assert problems == []
    assert params_of(got[0]) == {
        "messages": [USER],
        "model": "claude-test-1",
        "max_tokens": 256,
        "temperature": 0.0,
    }
    assert params_of(got[1]) == {**own, "temperature": 0.0}


def test_jsonl_keeps_its_own_temperature_and_other_params(tmp_path: Path) -> None:
    params = {
        "model": "m",
        "max_tokens": 5,
        "temperature": 0.9,
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "metadata": {"user_id": None},
        "stream": False,
        "messages": [USER],
    }
    path = write_jsonl(tmp_path / "r.jsonl", [{"custom_id": "a", "params": params}])

    got, _ = read_all(path, dataclasses.replace(DEFAULTS, enable_prompt_cache=True))

    assert params_of(got[0]) == params
    assert got[0].body == orjson.dumps({"custom_id": "a", "params": params})


def test_jsonl_temperature_none_adds_none(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [{"custom_id": "a", "params": {"messages": [USER]}}])

    got, _ = read_all(path, dataclasses.replace(DEFAULTS, temperature=None))

    assert "temperature" not in params_of(got[0])


def test_jsonl_skips_blank_lines_and_counts_requests_not_lines(tmp_path: Path) -> None:
    text = "\n  \n" + orjson.dumps({"custom_id": "a", "params": {"messages": [USER]}}).decode()
    text += "\r\n\n\t\n" + orjson.dumps({"custom_id": "b", "params": {"messages": [USER]}}).decode()

    got, problems = read_all(write(tmp_path / "r.jsonl", text))

    assert problems == []
    assert [(r.index, r.custom_id) for r in got] == [(0, "a"), (1, "b")]


def test_jsonl_problems_are_located_by_line_and_valid_rows_still_yielded(tmp_path: Path) -> None:
    ok = {"messages": [USER]}
    lines: list[Any] = [
        {"custom_id": "ok-1", "params": ok},
        {"params": ok},
        {"custom_id": "x y", "params": ok},
        {"custom_id": "a", "params": {"messages": []}},
        {"custom_id": "a", "params": {"messages": [USER], "max_tokens": 0}},
        '{"custom_id": "a", "params": tru}',
        {"custom_id": "a", "params": {"messages": [USER], "stream": True}},
        {"custom_id": "a", "params": {"messages": [{"role": "assistant", "content": "x"}]}},
        {"custom_id": 5, "params": ok},
        {"custom_id": "a"},
        {"custom_id": "a", "params": [ok]},
        [1, 2],
        {"custom_id": "a", "params": ok, "method": "POST"},
        {"custom_id": "a", "params": {"messages": [USER], "model": "", "max_tokens": "5"}},
        {"custom_id": "a", "params": {"messages": [USER], "system": 5, "max_tokens": True}},
        {"custom_id": "k" * 65, "params": ok},
        {"custom_id": "ok-2", "params": ok},
    ]

    got, problems = read_all(write_jsonl(tmp_path / "r.jsonl", lines))

    assert [(r.index, r.custom_id) for r in got] == [(0, "ok-1"), (16, "ok-2")]
    assert problems == [
        "line 2: custom_id: missing",
        'line 3: custom_id "x y" does not match ^[a-zA-Z0-9_-]{1,64}$',
        "line 4: params.messages: must be a non-empty list",
        "line 5: params.max_tokens: must be a positive integer",
        "line 6: not valid JSON (invalid literal, expected 'true' at column 30)",
        "line 7: params.stream: batches do not support streaming",
        'line 8: params.messages[0]: role must be "user"',
        "line 9: custom_id: must be a string",
        "line 10: params: missing",
        "line 11: params: must be an object",
        'line 12: must be a JSON object with "custom_id" and "params"',
        'line 13: unexpected key "method"',
        "line 14: params.model: must be a non-empty string",
        "line 14: params.max_tokens: must be a positive integer",
        "line 15: params.max_tokens: must be a positive integer",
        "line 15: params.system: must be a string or a list of text blocks",
        f'line 16: custom_id "{"k" * 65}" is longer than 64 characters',
    ]


def test_jsonl_request_over_the_byte_limit_is_located(tmp_path: Path) -> None:
    lines = [
        {"custom_id": "a", "params": {"messages": [USER]}},
        {"custom_id": "b", "params": {"messages": [{"role": "user", "content": "x" * 300}]}},
    ]
    path = write_jsonl(tmp_path / "r.jsonl", lines)
    full, _ = read_all(path)
    limit = len(full[0].body)

    got, problems = read_all(path, dataclasses.replace(DEFAULTS, max_request_bytes=limit))

    assert [r.custom_id for r in got] == ["a"]
    size = len(full[1].body)
    assert problems == [f"line 2: {size_problem(size, limit)}"]


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_jsonl_without_requests_is_an_error(tmp_path: Path, text: str) -> None:
    assert read_all(write(tmp_path / "r.jsonl", text)) == ([], ["no requests in the file"])


def test_jsonl_reading_stops_at_max_problems(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [{"params": {}}] * 5)

    _, problems = read_all(path, max_problems=2)

    assert problems == [
        "line 1: custom_id: missing",
        "line 1: params.messages: must be a non-empty list",
        "stopped reading after 2 problems",
    ]


# --- the file and its format --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("r.jsonl", InputFormat.JSONL),
        ("r.NDJSON", InputFormat.JSONL),
        ("r.json", InputFormat.ORIGINAL),
    ],
)
def test_format_follows_the_suffix(tmp_path: Path, name: str, expected: InputFormat) -> None:
    path = write(tmp_path / name, '{"custom_id": "a", "params": {}}\n')

    assert detect_format(path) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('\n\n{"custom_id": "a", "params": {}}\n{"custom_id": "b"}\n', InputFormat.JSONL),
        ('{"params": {}, "custom_id": "a"}', InputFormat.JSONL),
        ('{"custom_id": "a", "params": {"broken\n', InputFormat.JSONL),
        ('{"messages_list": [[{"role": "user", "content": "x"}]]}', InputFormat.ORIGINAL),
        ('{"custom_id_prefix": "a",\n"messages_list": []}', InputFormat.ORIGINAL),
        ('{\n  "messages_list": []\n}', InputFormat.ORIGINAL),
        ("", InputFormat.ORIGINAL),
    ],
)
def test_format_without_a_known_suffix_is_sniffed(
    tmp_path: Path, text: str, expected: InputFormat
) -> None:
    assert detect_format(write(tmp_path / "requests.txt", text)) is expected


def test_a_first_line_too_long_to_load_is_told_by_its_first_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "SNIFF_BYTES", 16)
    line = '{"custom_id": "a", "params": {"messages": []}}\n'
    original = '{"custom_id_prefix": "a", "messages_list": []}'

    assert detect_format(write(tmp_path / "a.txt", line)) is InputFormat.JSONL
    assert detect_format(write(tmp_path / "b.txt", original)) is InputFormat.ORIGINAL


def test_sniffed_jsonl_is_read_as_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "requests", [{"custom_id": "a", "params": {"messages": [USER]}}])

    got, problems = read_all(path)

    assert ([r.custom_id for r in got], problems) == (["a"], [])


def test_the_format_can_be_forced(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.json", [{"custom_id": "a", "params": {"messages": [USER]}}])

    got, _ = read_all(path, input_format=InputFormat.JSONL)

    assert [r.custom_id for r in got] == ["a"]


@pytest.mark.parametrize("name", ["missing.json", "missing.jsonl", "missing"])
def test_a_missing_file_is_an_input_error(tmp_path: Path, name: str) -> None:
    assert read_all(tmp_path / name) == ([], ["no such file"])


def test_a_directory_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()

    assert read_all(tmp_path / "dir.json") == ([], ["is a directory, not a file"])
    with pytest.raises(InputError, match="is a directory"):
        detect_format(tmp_path)


def test_input_format_is_a_str_enum() -> None:
    assert InputFormat("jsonl") is InputFormat.JSONL
    assert InputFormat.ORIGINAL == "original"
    assert InputFormat.__doc__


# --- custom ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "A-z_09", "x" * 64])
def test_valid_custom_ids(value: str) -> None:
    assert validate_custom_id(value) is None
    assert CUSTOM_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", 'custom_id "" does not match ^[a-zA-Z0-9_-]{1,64}$'),
        ("x y", 'custom_id "x y" does not match ^[a-zA-Z0-9_-]{1,64}$'),
        ("abc\n", 'custom_id "abc\\n" does not match ^[a-zA-Z0-9_-]{1,64}$'),
        ("é", 'custom_id "é" does not match ^[a-zA-Z0-9_-]{1,64}$'),
        ("x" * 65, f'custom_id "{"x" * 65}" is longer than 64 characters'),
    ],
)
def test_invalid_custom_ids(value: str, problem: str) -> None:
    assert validate_custom_id(value) == problem


def test_a_very_long_bad_value_is_shortened_in_the_message() -> None:
    problem = validate_custom_id("bad id " * 100)

    assert problem is not None
    assert len(problem) < 150
    assert '..." does not match' in problem


# --- streaming ----------------------------------------------------------------------------


def _peak_bytes_while_reading(path: Path) -> tuple[int, int]:
    """(requests read, peak Python memory while reading), with nothing kept."""
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_requests(path, DEFAULTS))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("layout", ["prompt first", "prompt last", "jsonl"])
def test_reading_memory_does_not_grow_with_the_file(tmp_path: Path, layout: str) -> None:
    # Given a file of ~12 MB: 4,000 requests of 3 kB each
    conversation = [{"role": "user", "content": "word " * 600}]
    count = 4000
    if layout == "jsonl":
        line = {"custom_id": "r", "params": {"messages": conversation}}
        path = write(tmp_path / "big.jsonl", (orjson.dumps(line) + b"\n") * count)
    else:
        rows = b",".join([orjson.dumps(conversation)] * count)
        sp = b'"system_prompt": "Be brief."'
        head, tail = (sp + b",", b"") if layout == "prompt first" else (b"", b"," + sp)
        path = write(
            tmp_path / "big.json", b"{" + head + b'"messages_list": [' + rows + b"]" + tail + b"}"
        )
    size = path.stat().st_size

    # When every request is read and dropped
    read, peak = _peak_bytes_while_reading(path)

    # Then memory stays a small fraction of the file
    assert read == count
    assert size > 10_000_000
    assert peak < size / 20, f"peak {peak:,} bytes for a {size:,}-byte file"


def test_the_byte_limit_message_says_what_the_limit_is_made_of() -> None:
    # Given the default 1,000,000-byte batch limit, a request just over what fits alone
    settings = load_settings(overrides={"api.max_payload_size": "1000000"})
    limit = request_defaults(settings).max_request_bytes

    message = size_problem(limit + 1, limit)

    # Then it names the configured limit and where the difference goes
    assert f"over the {limit:,}-byte limit for one request" in message
    assert "a batch may hold 1,000,000 bytes" in message
    assert "api.max_payload_size" in message
    assert f"less {1_000_000 - limit} for the create body" in message

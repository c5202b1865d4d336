"""Inputs: the two file formats, their validation, custom ids, and cutting into chunks.

reader    tell a file's format and yield its requests in input order
original  the original tool's JSON object (system prompt, messages_list, prefix)
jsonl     native batch requests, one per line
checks    what both share: the request, the settings' defaults, located checks
chunking  cut requests into batches by count and by bytes
"""

from __future__ import annotations

from .checks import (
    CUSTOM_ID_MAX_CHARS,
    CUSTOM_ID_PATTERN,
    DEFAULT_CUSTOM_ID_PREFIX,
    InputFormat,
    Request,
    RequestDefaults,
    request_defaults,
    validate_custom_id,
)
from .reader import detect_format, read_requests

__all__ = [
    "CUSTOM_ID_MAX_CHARS",
    "CUSTOM_ID_PATTERN",
    "DEFAULT_CUSTOM_ID_PREFIX",
    "InputFormat",
    "Request",
    "RequestDefaults",
    "detect_format",
    "read_requests",
    "request_defaults",
    "validate_custom_id",
]

"""The keys of the settings, read off the models, and pydantic errors as one line each.

A pydantic error says where in the data it is (a location) and what kind it is; this module
turns it into "<source>: <key>: <problem>", in the words the settings have always used:
"must be an integer, got \"lots\"", "must be 0 to 1, got 1.5", "unknown setting (did you
mean storage.base_dir?)".
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Final, cast, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from ..errors import SettingsError
from .models import LIMIT_REASONS, Settings

__all__ = ["LEAVES", "SECTIONS", "Leaf", "settings_error", "unknown_setting"]

NULL_WORDS: Final = frozenset({"", "null"})  #: text that means null for nullable settings
SHOWN_VALUE_CHARS = 60  #: characters of a wrong value quoted in an error message
SUGGESTION_CUTOFF = 0.6  #: similarity (0-1) for "did you mean" on unknown keys


# --- the keys, read off the models -----------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One setting: its base type, whether null is allowed, and both ends of its range."""

    kind: type
    nullable: bool
    between: tuple[float, float] | None  #: (low, high) when the value must lie in both

    def parse(self, text: str) -> object:
        """What an environment string stands for; pydantic's lax mode does the rest."""
        text = text.strip()
        if self.nullable and text.lower() in NULL_WORDS:
            return None
        if self.kind is tuple:
            return [item.strip() for item in text.split(",") if item.strip()]
        return text


def _leaf(info: FieldInfo) -> Leaf:
    annotation, metadata = info.annotation, list(info.metadata)
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    nullable = len(args) < len(get_args(annotation))
    if nullable:
        annotation = args[0]
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata += [
            item for field in extra if isinstance(field, FieldInfo) for item in field.metadata
        ]
    low: list[Any] = [item.ge for item in metadata if isinstance(item, annotated_types.Ge)]
    high: list[Any] = [item.le for item in metadata if isinstance(item, annotated_types.Le)]
    between = (float(low[0]), float(high[0])) if low and high else None
    kind: type = cast(type, get_origin(annotation) or annotation)
    return Leaf(kind, nullable, between)


def _walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Yield (dotted key, field) for every field, each section before its own fields."""
    for name, info in model.model_fields.items():
        yield prefix + name, info
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _walk(info.annotation, f"{prefix}{name}.")


def _is_section(info: FieldInfo) -> bool:
    return isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)


SECTIONS: Final = frozenset(key for key, info in _walk(Settings) if _is_section(info))
LEAVES: Final = {key: _leaf(info) for key, info in _walk(Settings) if not _is_section(info)}
# --- pydantic errors as one line naming the source and key ------------------------------


def _show(value: object) -> str:
    """Quote a value the way YAML would spell it, shortened."""
    if isinstance(value, date):
        return f"{value.isoformat()} (a date; put it in quotes)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > SHOWN_VALUE_CHARS:
        return text[: SHOWN_VALUE_CHARS - 3] + "..."
    return text


#: what a value must be, by the start of a pydantic error type
_NOUNS: Final = {
    "int": "an integer",
    "float": "a number",
    "finite": "a number",
    "bool": "true or false",
    "string": "a string",
    "tuple": "a list of strings",
}


def _split(loc: tuple[int | str, ...]) -> tuple[str, int]:
    """The dotted key an error location names, and how many parts of `loc` it used."""
    key = ""
    for used, part in enumerate(loc):
        key = f"{key}.{part}" if key else str(part)
        if key not in SECTIONS:
            return key, used + 1
    return key, len(loc)


def _dig(data: object, loc: tuple[int | str, ...]) -> object:
    for part in loc:
        data = data[part] if isinstance(data, Mapping) else None
    return data


def _out_of_range(kind: str, ctx: Mapping[str, Any], leaf: Leaf, value: Any) -> str:
    number = leaf.kind(value)  # shown as the type the setting holds: 0 for an int, 0.0 a float
    if leaf.between is not None:
        low, high = leaf.between
        return f"must be {low:g} to {high:g}, got {number:g}"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']:g}, got {_show(number)}"
    if kind == "greater_than_equal":
        return f"must be {ctx['ge']:g} or more, got {_show(number)}"
    reason = LIMIT_REASONS.get(ctx["le"])
    return f"must be at most {ctx['le']}{f' ({reason})' if reason else ''}, got {_show(number)}"


def _problem(error: ErrorDetails, key: str, leaf: Leaf, whole: object) -> str:
    """The message for an error about the value of setting `key`; `whole` is its raw value."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error["input"]
    if kind == "abr":
        return str(ctx["message"])
    if kind == "string_pattern_mismatch":
        return "must not contain empty names" if leaf.kind is tuple else "must not be empty"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        return _out_of_range(kind, ctx, leaf, value)
    if kind == "enum" and issubclass(leaf.kind, StrEnum):
        return f"must be one of {', '.join(leaf.kind)}, got {_show(value)}"
    noun = _NOUNS.get(kind.split("_")[0], "of another type")
    if leaf.kind is tuple:
        noun, value = _NOUNS["tuple"], whole
    nullable = " or null" if leaf.nullable else ""
    return f"must be {noun}{nullable}, got {_show(value)}"


def settings_error(
    error: ErrorDetails, data: object, label: str, where: Callable[[str], str]
) -> SettingsError:
    """A pydantic error as one line: "<source>: <key>: <problem>"."""
    loc = error["loc"]
    if "key" in error.get("ctx", {}):  # a rule between keys, blamed on the one named
        loc = (*loc, *str(error["ctx"]["key"]).split("."))
    key, used = _split(loc)
    if error["type"] == "extra_forbidden":
        return unknown_setting(label, key)
    if key in LEAVES:
        problem = _problem(error, key, LEAVES[key], _dig(data, loc[:used]))
        return SettingsError(f"{where(key)}: {problem}")
    place = where(key) if key else label
    return SettingsError(f"{place}: must be a mapping of settings, got {_show(error['input'])}")


def _suggest(key: str) -> str | None:
    tail = key.rsplit(".", 1)[-1]
    same_tail = [known for known in LEAVES if known.rsplit(".", 1)[-1] == tail]
    if len(same_tail) == 1:
        return same_tail[0]
    close = difflib.get_close_matches(key, [*LEAVES, *SECTIONS], n=1, cutoff=SUGGESTION_CUTOFF)
    return close[0] if close else None


def unknown_setting(label: str, key: str) -> SettingsError:
    guess = _suggest(key)
    hint = f" (did you mean {guess}?)" if guess else ""
    return SettingsError(f"{label}: {key}: unknown setting{hint}")

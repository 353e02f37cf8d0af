"""GetExecutionHistory's wire body, built once per history event instead of once per read.

moto answers GetExecutionHistory through its generic response serializer, which looks every
member of every event up under several aliases (about 1 ms per event) and re-serializes the
whole history on each call; reading the history of a 600-transition execution cost more than
running it. Events never change once recorded, so the engine serializes each one exactly once,
with this shape-compiled copy of the rules of moto 5.2.5's JSON response serializer for
plain-dict values (tests/unit/engine/test_history_wire.py checks the output against moto's own
serializer on real histories):

* structure: members in model order, each looked up under the keys moto's attribute picker
  tries for a dict (shape name and its snake_case form for list/structure members whose shape
  name is not a sibling member, the member name, the parent-prefix-stripped name, the model's
  serialization name); absent or None members are left out; keys outside the model are dropped;
* list: items serialized by the member shape (a None structure item stays None);
* map: values serialized by the value shape (None structures are left out);
* string: Enum values unwrapped, everything else but None/{}/[] passed through `str`;
* integer/long -> int, float/double -> float, blob -> base64, timestamp -> epoch seconds
  truncated to milliseconds (the protocol's default `unixtimestamp`), others as they are.

Anything outside that (a non-dict structure value, another timestamp format) raises
`Unsupported`, and the caller falls back to moto's serializer.
"""

from __future__ import annotations

import base64
import calendar
import datetime as _dt
import json
import re
from collections.abc import Callable
from enum import Enum
from typing import Any

from botocore import xform_name
from botocore.model import Shape
from botocore.utils import parse_to_aware_datetime

Encoder = Callable[[Any], Any]

_SKIP = object()  # "nothing serialized" (a None structure): the caller decides what that means
_MS_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")  # moto's event timestamps
_DEFAULT_TIMESTAMP_FORMAT = "unixtimestamp"


class Unsupported(ValueError):
    """A value this fast path does not reproduce exactly; serialize with moto instead."""


def _unix_timestamp(value: Any) -> int | float:
    if isinstance(value, str) and _MS_ISO.match(value):
        moment = _dt.datetime.fromisoformat(value)  # 3.11 reads the trailing Z as UTC
    else:
        moment = parse_to_aware_datetime(value)
    base = calendar.timegm(moment.timetuple())
    if moment.microsecond:
        return base + (moment.microsecond // 1000) / 1000.0
    return base


def _string(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    return str(value) if value not in [None, {}, []] else value


def _blob(value: Any) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).strip().decode("utf-8")


def _candidate_keys(parent: Shape, key: str, shape: Shape) -> tuple[str, ...]:
    # The keys moto's XFormedAttributePicker tries on a plain dict, in its order: each alias
    # provider that applies yields the alias, then its snake_case form.
    members = parent.members
    aliases: list[str] = []
    if shape.type_name in ("list", "structure") and shape.name not in members and key != shape.name:
        aliases.append(shape.name)  # ShapeNameAlias
    aliases.append(key)  # NoAlias
    if key.lower().startswith(parent.name.lower()) and key[len(parent.name) :] not in members:
        aliases.append(key[len(parent.name) :])  # ShapePrefixAlias
    if key.lower().startswith("dict"):
        aliases.append(key[len("dict") :])  # ClassPrefixAlias (the value's class is dict)
    serialized_name = shape.serialization.get("name", key)
    if serialized_name != key:
        aliases.append(serialized_name)  # ModelAlias
    keys: list[str] = []
    for alias in aliases:
        for candidate in (alias, xform_name(alias)):
            if candidate not in keys:
                keys.append(candidate)
    return tuple(keys)


def _structure(shape: Shape, compile_member: Callable[[Shape], Encoder]) -> Encoder:
    members = [
        (
            _candidate_keys(shape, key, member),
            member.serialization.get("name", key),
            compile_member(member),
        )
        for key, member in shape.members.items()
    ]

    def encode(value: Any) -> Any:
        if value is None:
            return _SKIP
        if type(value) is not dict:
            raise Unsupported(f"{shape.name} value is a {type(value).__name__}, not a dict")
        out: dict[str, Any] = {}
        for keys, name, encode_member in members:
            found = None
            for key in keys:
                if key in value:
                    found = value[key]
                    break
            if found is not None:
                out[name] = encode_member(found)
        return out

    return encode


def compile_shape(shape: Shape, _cache: dict[int, Encoder] | None = None) -> Encoder:
    """An encoder turning a value of `shape` into the JSON-ready value moto would send."""
    cache: dict[int, Encoder] = {} if _cache is None else _cache
    known = cache.get(id(shape))
    if known is not None:
        return known
    kind = shape.type_name
    encoder: Encoder
    if kind == "structure":
        if getattr(shape, "is_document_type", False):
            encoder = _identity
        else:
            # Recursive shapes: register a trampoline before compiling the members.
            slot: list[Encoder] = []
            cache[id(shape)] = lambda value: slot[0](value)
            encoder = _structure(shape, lambda member: compile_shape(member, cache))
            slot.append(encoder)
    elif kind == "list":
        item = compile_shape(shape.member, cache)

        def encoder(value: Any) -> Any:
            return [value_item if (out := item(value_item)) is _SKIP else out for value_item in value]

    elif kind == "map":
        map_value = compile_shape(shape.value, cache)

        def encoder(value: Any) -> Any:
            return {k: out for k, v in value.items() if (out := map_value(v)) is not _SKIP}

    elif kind == "string":
        encoder = _string
    elif kind in ("integer", "long"):
        encoder = int
    elif kind in ("float", "double"):
        encoder = float
    elif kind == "blob":
        encoder = _blob
    elif kind == "timestamp":
        timestamp_format = shape.serialization.get("timestampFormat", _DEFAULT_TIMESTAMP_FORMAT)
        if timestamp_format.lower() != _DEFAULT_TIMESTAMP_FORMAT:
            raise Unsupported(f"timestamp format {timestamp_format!r} of {shape.name}")
        encoder = _unix_timestamp
    else:
        encoder = _identity
    cache[id(shape)] = encoder
    return encoder


def _identity(value: Any) -> Any:
    return value


class HistoryBody:
    """The GetExecutionHistory body of one growing event list, one JSON fragment per event.

    `output_shape` is the operation's output shape (members `events`, `nextToken`); moto's
    result carries only `events`, so the body is `{"events": [...]}`.
    """

    def __init__(self, output_shape: Shape) -> None:
        events_shape = output_shape.members["events"]
        self._key = events_shape.serialization.get("name", "events")
        self._event = compile_shape(events_shape.member)
        self._fragments: list[str] = []

    def render(self, events: list[Any]) -> str:
        """The body for `events`, of which every event already rendered must be a prefix."""
        for event in events[len(self._fragments) :]:
            encoded = self._event(event)
            self._fragments.append("null" if encoded is _SKIP else json.dumps(encoded))
        return f"{{{json.dumps(self._key)}: [{', '.join(self._fragments[: len(events)])}]}}"

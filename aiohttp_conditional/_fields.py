"""Header fields a caller adds to answers: checked where they are given, not sent."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Final

from multidict import CIMultiDict

__all__ = (
    "FIELD_VALUE",
    "TOKEN",
    "Fields",
    "HeadersFunction",
    "add_vary",
    "check_fields",
    "parse_field",
)

Fields = tuple[tuple[str, str], ...]
HeadersFunction = Callable[[str, os.stat_result], Mapping[str, str] | None]

# RFC 9110 §5.1: a field name is a token.
TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 §5.5: visible ASCII, spaces and tabs; no CR or LF, which would end the
# field, nor any other control character.  (obs-text is left out: clients differ
# on how they decode it.)
FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e]*\Z")
# What the response works out from the file, or what frames the message: a caller's
# value would contradict the bytes sent (RFC 9110 §8.6, §8.8, §14) or the promise
# that no stale copy is called current.
_OWN: Final = frozenset(
    {
        "accept-ranges",
        "connection",
        "content-digest",
        "content-encoding",
        "content-md5",
        "content-length",
        "content-range",
        "date",
        "digest",
        "etag",
        "keep-alive",
        "last-modified",
        "proxy-connection",
        "repr-digest",
        "trailer",
        "transfer-encoding",
        "unencoded-digest",
        "upgrade",
    }
)


def check_fields(fields: object, where: str) -> Fields:
    """Return a mapping's fields as pairs, or raise for one that cannot be sent.

    ``where`` names what gave them, for the message.  A field the response sets
    itself (ETag, Content-Length...) is refused: it would not match what is sent.
    """
    if not isinstance(fields, Mapping):
        raise TypeError(
            f"{where} must be a mapping of field names to values, "
            f"not {type(fields).__name__}"
        )
    checked = []
    for name, value in fields.items():
        if not isinstance(name, str) or not TOKEN.match(name):
            raise ValueError(f"{where}: {name!r} is not a header field name")
        if name.lower() in _OWN:
            raise ValueError(f"{where}: {name} is worked out by the response itself")
        if not isinstance(value, str) or not FIELD_VALUE.match(value):
            raise ValueError(
                f"{where}: {name} has a value that cannot be sent: {value!r}"
            )
        checked.append((name, value.strip(" \t")))
    return tuple(checked)


def parse_field(line: str) -> tuple[str, str]:
    """Return the name and value of ``"Name: value"``, as curl's ``-H`` takes it."""
    name, colon, value = line.partition(":")
    if not colon:
        raise ValueError(f"not 'Name: value': {line!r}")
    ((name, value),) = check_fields({name.strip(): value}, "header")
    return name, value


def add_vary(headers: CIMultiDict[str], name: str) -> None:
    """Add a field name to what a response's Vary lists, in one field.

    Every Vary line the caller set counts (RFC 9110 §5.3: they are one list), each
    name once; ``*`` already says that everything matters (§12.5.5).
    """
    names: list[str] = []
    for line in headers.getall("Vary", ()):
        names.extend(part.strip() for part in line.split(",") if part.strip())
    if "*" in names:
        headers["Vary"] = "*"
        return
    if name.lower() not in (known.lower() for known in names):
        names.append(name)
    headers["Vary"] = ", ".join(dict.fromkeys(names))

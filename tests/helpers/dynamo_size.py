"""The size DynamoDB bills an item by (attribute names plus values, as its documentation counts them)."""

from __future__ import annotations

import math
from typing import Any

from boto3.dynamodb.types import TypeSerializer

#: One write unit covers an item of up to this many bytes.
WRITE_UNIT = 1024


def _number(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0") or "0"
    return math.ceil(len(digits.split("e")[0].split("E")[0]) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one low-level attribute value (``{"S": ...}``, ``{"M": {...}}``, ...)."""
    (kind, inner), *_ = value.items()
    sizes = {
        "S": lambda: len(inner.encode()),
        "N": lambda: _number(inner),
        "BOOL": lambda: 1,
        "NULL": lambda: 1,
        "SS": lambda: sum(len(s.encode()) for s in inner),
        "NS": lambda: sum(_number(n) for n in inner),
        "L": lambda: 3 + sum(value_size(v) + 1 for v in inner),
        "M": lambda: 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items()),
    }
    return sizes[kind]() if kind in sizes else len(inner)


def item_size(item: dict[str, Any]) -> int:
    """Bytes of an item given as the resource layer returns it (Python values)."""
    serialise = TypeSerializer().serialize
    total = 0
    for name, value in item.items():
        total += len(name.encode()) + value_size(dict(serialise(value)))
    return total

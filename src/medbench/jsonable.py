"""Plain, canonical JSON of medbench's values: what the store writes and what the config hash is taken of."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any


def to_jsonable(obj: Any, *, where: str = "value") -> Any:
    """``obj`` as plain JSON types: dicts with string keys, lists, str, int, float, bool, None.

    Understands tuples and sets (sets sorted, so their order cannot change a hash), paths, enums,
    dataclasses, pydantic models, datetimes and numpy scalars/arrays. Non-finite floats become None,
    so that the stored text is strict JSON.

    Raises:
        TypeError: for anything else, naming where in ``obj`` it sits.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, where=where)
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value, where=f"{where}[{key!r}]") for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value, where=f"{where}[{i}]") for i, value in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(value, where=where) for value in obj]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), where=where)
    if hasattr(obj, "model_dump"):  # pydantic v2
        return to_jsonable(obj.model_dump(mode="json"), where=where)
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):  # numpy, without importing it
        return to_jsonable(obj.tolist(), where=where)
    raise TypeError(f"{where} of type {type(obj).__name__} cannot be stored as JSON")


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the same content always gives the same text."""
    return json.dumps(
        to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )

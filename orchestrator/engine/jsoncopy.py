"""`copy.deepcopy` for the JSON values a state machine passes around, several times faster.

moto's interpreter deep-copies state input, results and parameters several times per state;
those are plain JSON trees (dict, list, str, int, float, bool, None), for which the generic
`copy.deepcopy` spends most of its time dispatching. `deepcopy` here copies dicts and lists
itself, keeps the memo (so a subtree referenced twice is copied once and stays shared, exactly
as `copy.deepcopy` does) and hands every other type to `copy.deepcopy` with the same memo.
"""

from __future__ import annotations

import copy
from typing import Any

_ATOMIC = frozenset({str, int, float, bool, type(None)})


def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """Same result as `copy.deepcopy(value, memo)`."""
    cls = type(value)
    if cls in _ATOMIC:
        return value
    if memo is None:
        memo = {}
    return _copy(value, cls, memo)


def _copy(value: Any, cls: type, memo: dict[int, Any]) -> Any:
    known = memo.get(id(value), memo)
    if known is not memo:
        return known
    if cls is dict:
        out: Any = {}
        memo[id(value)] = out
        for key, item in value.items():
            item_cls = type(item)
            out[key if type(key) in _ATOMIC else copy.deepcopy(key, memo)] = (
                item if item_cls in _ATOMIC else _copy(item, item_cls, memo)
            )
    elif cls is list:
        out = []
        memo[id(value)] = out
        for item in value:
            item_cls = type(item)
            out.append(item if item_cls in _ATOMIC else _copy(item, item_cls, memo))
    else:
        return copy.deepcopy(value, memo)
    _keep_alive(value, memo)
    return out


def _keep_alive(value: Any, memo: dict[int, Any]) -> None:
    # As copy.deepcopy does: hold the originals so their ids are not reused while the memo lives.
    try:
        memo[id(memo)].append(value)
    except KeyError:
        memo[id(memo)] = [value]


class CopyModule:
    """Stands in for the `copy` module inside a moto module: a faster `deepcopy`, the rest as is."""

    deepcopy = staticmethod(deepcopy)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

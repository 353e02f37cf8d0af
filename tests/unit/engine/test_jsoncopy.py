"""jsoncopy.deepcopy gives what copy.deepcopy gives, shared subtrees included."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from orchestrator.engine import jsoncopy


def test_json_tree_is_copied_deeply() -> None:
    value: Any = {"a": [1, 2.5, {"b": None, "c": True}], "d": "text", "e": {"f": []}}
    copied = jsoncopy.deepcopy(value)
    assert copied == copy.deepcopy(value)
    copied["a"][2]["b"] = "changed"
    copied["e"]["f"].append(1)
    assert value == {"a": [1, 2.5, {"b": None, "c": True}], "d": "text", "e": {"f": []}}
    assert jsoncopy.deepcopy("atom") == "atom" and jsoncopy.deepcopy(None) is None


def test_shared_subtree_stays_shared_as_with_copy_deepcopy() -> None:
    shared = {"x": [1]}
    value = {"left": shared, "right": shared, "list": [shared]}
    copied = jsoncopy.deepcopy(value)
    reference = copy.deepcopy(value)
    assert copied == reference
    assert copied["left"] is copied["right"] is copied["list"][0]
    assert copied["left"] is not shared


def test_other_types_go_to_copy_deepcopy() -> None:
    class Box:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

    inner = {"k": 1}
    value = [Box(inner), inner, (inner,), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]
    copied = jsoncopy.deepcopy(value)
    assert copied[0] is not value[0] and copied[0].inner == {"k": 1}
    assert copied[0].inner is copied[1] is copied[2][0]  # one copy, shared, as copy.deepcopy does
    assert copied[3] == value[3]
    assert jsoncopy.CopyModule().copy is copy.copy

"""The typed report model (scrubber/report/model.py) and schema.json say the same.

Every TypedDict of a document is walked alongside the schema object it
describes: the members must be the same, required ones required in both, and
nested objects are compared the same way. A member added to one and not the
other fails here.
"""

# No "from __future__ import annotations": the TypedDict below must see NotRequired.
import json
import types
import typing
from importlib.resources import files
from typing import Any, NotRequired, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from scrubber.report import model

SCHEMA = json.loads(files("scrubber.report").joinpath("schema.json").read_text("utf-8"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref; of a oneOf/anyOf, take the first object alternative (the current form)."""
    while True:
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "oneOf" in node or "anyOf" in node:
            options = node.get("oneOf") or node.get("anyOf")
            node = next(o for o in options if _resolve(o).get("type") != "null")
        else:
            return node


def _nested(hint: Any) -> tuple[str, Any] | None:
    """('object', TypedDict) or ('array', TypedDict) for members worth descending into."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        hint = options[0] if len(options) == 1 else hint
    if is_typeddict(hint):
        return "object", hint
    if get_origin(hint) is list and is_typeddict(get_args(hint)[0]):
        return "array", get_args(hint)[0]
    return None


def _compare(typed: Any, node: dict[str, Any], where: str) -> list[str]:
    node = _resolve(node)
    problems = []
    members = set(get_type_hints(typed))
    properties = set(node.get("properties", {}))
    if members != properties:
        problems.append(f"{where}: model {sorted(members ^ properties)} differ from schema")
    required = set(typed.__required_keys__)
    if required != set(node.get("required", [])):
        problems.append(f"{where}: required {sorted(required)} != {sorted(node['required'])}")
    if node.get("additionalProperties", True) is not False:
        problems.append(f"{where}: the schema object allows other members")
    for name, hint in get_type_hints(typed).items():
        found = _nested(hint)
        if found is None or name not in node.get("properties", {}):
            continue
        kind, inner = found
        child = _resolve(node["properties"][name])
        if kind == "array":
            child = child["items"]
        problems += _compare(inner, child, f"{where}.{name}")
    return problems


@pytest.mark.parametrize(
    ("typed", "definition"),
    [
        (model.BatchReport, "batch_report"),
        (model.SummaryReport, "summary"),
        (model.LedgerReport, "ledger"),
    ],
)
def test_model_and_schema_have_the_same_members(typed: Any, definition: str) -> None:
    assert _compare(typed, SCHEMA["$defs"][definition], definition) == []


def test_the_check_notices_a_member_the_schema_lacks() -> None:
    class Extra(model.Signature):
        extra: NotRequired[int]

    problems = _compare(Extra, SCHEMA["$defs"]["signature"], "signature")
    assert problems == ["signature: model ['extra'] differ from schema"]


def test_every_document_kind_is_in_the_schema() -> None:
    kinds = {
        _resolve(o)["properties"]["report"]["properties"]["format"]["const"]
        for o in SCHEMA["oneOf"]
    }
    assert kinds == {model.FORMAT, model.SUMMARY_FORMAT, model.LEDGER_FORMAT}

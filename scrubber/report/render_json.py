"""JSON: the canonical form, indented for people; byte-exact for verification."""

from __future__ import annotations

import json
from collections.abc import Mapping


def render_json(document: Mapping[str, object]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

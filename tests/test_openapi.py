"""docs/openapi.yaml against the real listener: every answer it gives (status,
media type, JSON body, Retry-After) is one the description allows, and
schemathesis fuzzes every operation for a bounded number of cases."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from scrubber import unsubscribe
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.listener_support import Listener, make_batch, proof_for, start_listener

ROOT = Path(__file__).resolve().parent.parent
DOC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
ADDRESS = "openapi@example.org"
UNSUBSCRIBING = ["first@example.org", "second@example.org"]
REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return init_workspace(tmp_path_factory.mktemp("openapi") / "ws")


@pytest.fixture(scope="module")
def served(ws: Workspace) -> Iterator[tuple[Listener, str, str]]:
    batch = make_batch(ws, [ADDRESS, *UNSUBSCRIBING])
    listener = start_listener(ws.root, "--client-rate", "1000", channels=("http",))
    yield listener, batch.token, proof_for(ADDRESS, batch)
    assert listener.stop() == 0, listener.log()
    assert "Traceback" not in listener.log()


def call(
    listener: Listener, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        listener.http + path, data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def check(template: str, method: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """The answer is one the description documents for this operation."""
    responses = DOC["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template}: {status} is not documented"
    documented = resolve(responses[str(status)])
    if status in (429, 503) and not body and "Content-Type" not in headers:
        return  # refused at the connection gate, before the request was read
    if template == "/u/{token}" and method == "POST" and status == 200 and not body:
        return  # RFC 8058's answer: 200 and nothing else
    media_type = headers["Content-Type"].split(";")[0].strip()
    assert media_type in documented["content"], f"{status}: {media_type} not documented"
    for name in documented.get("headers", {}):
        assert name in headers, f"{status}: header {name} missing"
    schema = documented["content"][media_type]["schema"]
    parse = {"application/json": json.loads, "application/yaml": yaml.safe_load}
    value: Any = parse.get(media_type, bytes.decode)(body)
    validator = jsonschema.Draft202012Validator(
        {"$ref": "urn:openapi#" + pointer(schema)} if "$ref" in schema else schema,
        registry=REGISTRY,
    )
    validator.validate(value)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = lookup(node["$ref"])
    return node


def lookup(ref: str) -> dict[str, Any]:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def pointer(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).removeprefix("#")


def test_the_description_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    for schema in DOC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)  # raises, naming the fault
    schemathesis.openapi.from_dict(DOC).validate()


def test_the_listener_serves_the_description_in_docs(served: tuple[Listener, str, str]) -> None:
    listener, _, _ = served
    status, headers, body = call(listener, "GET", "/openapi.yaml")
    check("/openapi.yaml", "GET", status, headers, body)
    assert yaml.safe_load(body) == DOC


def test_every_documented_route_answers_as_described(served: tuple[Listener, str, str]) -> None:
    listener, token, proof = served
    ping = f"/dni/v1/ping/{token}"
    route = "/dni/v1/ping/{token}"
    cases: list[tuple[str, str, str, bytes | None, dict[str, str], int]] = [
        (
            route,
            "POST",
            ping,
            json.dumps({"proofs": [proof]}).encode(),
            {"Content-Type": "application/json"},
            200,
        ),
        (route, "POST", ping, proof.encode(), {"Content-Type": "text/plain"}, 200),
        (
            route,
            "POST",
            ping,
            gzip.compress(b"x" * 22),
            {"Content-Type": "text/plain", "Content-Encoding": "gzip"},
            200,
        ),
        (route, "POST", ping, b"{", {"Content-Type": "application/json"}, 400),
        (route, "POST", ping, b"<p>", {"Content-Type": "text/html"}, 415),
        (route, "POST", ping, b"x" * 70_000, {"Content-Type": "text/plain"}, 413),
        (
            route,
            "POST",
            "/dni/v1/ping/unknown",
            proof.encode(),
            {"Content-Type": "text/plain"},
            404,
        ),
        ("/dni/v1/key", "GET", "/dni/v1/key", None, {}, 200),
        ("/healthz", "GET", "/healthz", None, {}, 200),
        ("/metrics", "GET", "/metrics", None, {}, 200),
    ]
    for template, method, path, body, headers, expected in cases:
        status, answer_headers, answer = call(listener, method, path, body, **headers)
        assert status == expected, (path, body, answer)
        check(template, method, status, answer_headers, answer)


def unsubscribe_url(ws: Workspace, address: str) -> str:
    secret = unsubscribe.load_secret(ws.root)
    with open_store(ws) as store:
        who = unsubscribe.subscriber(store, address, "customers", secret=secret)
    return f"/u/{unsubscribe.make_token(secret, who)}"


def test_the_unsubscribe_routes_answer_as_described(
    ws: Workspace, served: tuple[Listener, str, str]
) -> None:
    listener, _, _ = served
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    multipart = {"Content-Type": "multipart/form-data; boundary=xx"}
    parted = (
        b'--xx\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--xx--\r\n"
    )
    first, second = (unsubscribe_url(ws, a) for a in UNSUBSCRIBING)
    forged = "/u/" + "a" * 52
    one_click = b"List-Unsubscribe=One-Click"
    cases: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
        ("GET", first, None, {}, 200),
        ("GET", forged, None, {}, 404),
        ("POST", first, one_click, form, 200),
        ("POST", first, one_click, form, 200),  # a repeat
        ("POST", second, parted, multipart, 200),
        ("POST", second, one_click + b"&from=page", form, 200),  # from the GET page: HTML
        ("POST", first, b"List-Unsubscribe=No", form, 400),
        ("POST", first, one_click, {"Content-Type": "text/plain"}, 415),
        ("POST", first, b"x" * 70_000, form, 413),
        ("POST", forged, one_click, form, 404),
    ]
    for method, path, body, headers, expected in cases:
        status, answer_headers, answer = call(listener, method, path, body, **headers)
        assert status == expected, (method, path, body, answer)
        check("/u/{token}", method, status, answer_headers, answer)


def test_rate_limited_answer_is_as_described(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    batch = make_batch(ws, [ADDRESS])
    listener = start_listener(ws.root, "--client-rate", "1", channels=("http",))
    try:
        body = "\n".join(["A" * 22] * 1000).encode()
        statuses = []
        for _ in range(3):
            status, headers, answer = call(
                listener,
                "POST",
                f"/dni/v1/ping/{batch.token}",
                body,
                **{"Content-Type": "text/plain"},
            )
            check("/dni/v1/ping/{token}", "POST", status, headers, answer)
            statuses.append(status)
        assert 429 in statuses
    finally:
        assert listener.stop() == 0


def test_schemathesis_finds_no_answer_outside_the_description(
    served: tuple[Listener, str, str],
) -> None:
    listener, _, _ = served
    schema = schemathesis.openapi.from_dict(DOC)
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=listener.http)

        fuzz()

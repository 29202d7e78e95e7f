"""The authorisation matrix, generated from the OpenAPI document: every operation on a
resource of account A (ids made through the API), asked with no token (401), with a
token of another account (404, and nothing changed), and by a site admin who is no
member of A (allowed). Routes added later (web/routes/*.py) are in the document, so
they are in this test the day they are added: ids come from `MAKE` (how to make an X)
or, for any other `{x_id}`, from the create operation the document links to `/…/{x_id}`;
bodies are the smallest the request schema accepts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gapless.accounts import Accounts
from tests.support.server import LiveServer

PASSWORD = "matrix orchid tunnel seven"
# Values a field of this name must have to be valid beyond its schema (a model that exists).
VALUES: dict[str, Any] = {"model": "scripted:default", "value": 1}
METHODS = ("get", "post", "put", "patch", "delete")


def smallest(schema: dict[str, Any], spec: dict[str, Any], known: dict[str, str]) -> Any:
    """The smallest value `schema` accepts (required fields, first choices), with the real
    ids of `known` in any field of an id's name (a score needs its chat_id)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return smallest(spec["components"]["schemas"][name], spec, known)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return smallest(options[0], spec, known)
    kind = schema.get("type", "object")
    if kind == "object":
        fields = schema.get("properties", {})
        # One optional reference to a real resource (a score targets one thing), no more.
        required = schema.get("required", [])
        refs = [
            n
            for n in fields
            if n not in required and n.endswith("_id") and not known.get(n, "no_").startswith("no_")
        ]
        names = [*required, *refs[:1]]
        return {
            name: (known.get(name) if name.endswith("_id") else None)
            or ("enum" not in fields[name] and VALUES.get(name))
            or smallest(fields[name], spec, known)
            for name in dict.fromkeys(names)
        }
    if kind == "array":
        return []
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return None


def body_for(operation: dict[str, Any], spec: dict[str, Any], known: dict[str, str]) -> Any:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return None if schema is None else smallest(schema, spec, known)


def query_for(operation: dict[str, Any], spec: dict[str, Any], known: dict[str, str]) -> str:
    """The required query parameters, smallest (real ids by name)."""
    pairs = [
        f"{p['name']}={known.get(p['name']) or smallest(p.get('schema', {}), spec, known)}"
        for p in operation.get("parameters", [])
        if p.get("in") == "query" and p.get("required")
    ]
    return "?" + "&".join(pairs) if pairs else ""


def made_query(operation: dict[str, Any]) -> bool:
    """Whether the operation's required query names A's things (a comparison of A's runs)."""
    query = [
        p["name"]
        for p in operation.get("parameters", [])
        if p.get("in") == "query" and p.get("required")
    ]
    return any(name in MAKE for name in query)


class World:
    """Account A's resources, made through the API by A's member, and the callers."""

    def __init__(self, server: LiveServer, spec: dict[str, Any], tokens: dict[str, str]) -> None:
        self.server, self.spec, self.tokens = server, spec, tokens
        self.ids: dict[str, str] = {}

    def client(self, who: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.AsyncClient(base_url=self.server.url, timeout=30, headers=headers)

    async def id_of(self, parameter: str) -> str:
        if parameter not in self.ids:
            make = MAKE.get(parameter)
            async with self.client("owner") as http:
                found = await make(self, http) if make else await self.created(parameter, http)
            self.ids[parameter] = found
        return self.ids[parameter]

    async def created(self, parameter: str, http: httpx.AsyncClient) -> str:
        """Through the create operation the document links to `{parameter}` (with a chat and
        a reply made first: what is made may need to refer to one)."""
        if parameter not in ("chat_id", "message_id"):
            await self.id_of("message_id")
        for path, item in self.spec["paths"].items():
            links = item.get("post", {}).get("responses", {}).get("201", {}).get("links", {})
            for link in links.values():
                pointer = link["parameters"].get(parameter)
                if pointer is None:
                    continue
                url = await self.url(path)
                made = await http.post(url, json=body_for(item["post"], self.spec, self.ids))
                assert made.status_code == 201, (path, made.request.content, made.text)
                return str(made.json()[pointer.rsplit("/", 1)[-1]])
        return f"no_{parameter}"  # nothing makes one: still refused, if vacuously

    async def url(self, path: str, operation: dict[str, Any] | None = None) -> str:
        """`path` with real ids, and the operation's required query (made first if `MAKE`
        knows how: a comparison needs two real runs)."""
        for name in [p.strip("{}") for p in path.split("/") if p.startswith("{")]:
            path = path.replace(f"{{{name}}}", await self.id_of(name))
        if operation is None:
            return path
        if made_query(operation):
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter["name"] in MAKE:
                    await self.id_of(parameter["name"])
        return path + query_for(operation, self.spec, self.ids)


async def make_message(world: World, http: httpx.AsyncClient) -> str:
    chat_id = await world.id_of("chat_id")
    sent = await http.post(f"/api/chats/{chat_id}/messages", json={"content": "hi"})
    assert sent.status_code == 201, sent.text
    await world.server.adrain()
    return str(sent.json()["assistant_message"]["id"])


async def make_trace(world: World, http: httpx.AsyncClient) -> str:
    """The reply's trace, once the recorder (a background writer) has stored it."""
    await world.id_of("message_id")
    for _ in range(100):
        found = await http.get("/api/traces")
        items = found.json().get("traces", []) if found.status_code == 200 else []
        if items:
            return str(items[0]["id"])
        await asyncio.sleep(0.1)
    return "no_trace"


async def make_account(world: World, http: httpx.AsyncClient) -> str:
    return str((await http.get("/api/accounts")).json()["accounts"][0]["id"])


async def make_user(world: World, http: httpx.AsyncClient) -> str:
    return str((await http.get("/api/session")).json()["user"]["id"])


async def make_token(world: World, http: httpx.AsyncClient) -> str:
    return str((await http.post("/api/me/tokens", json={"name": "matrix"})).json()["id"])


async def make_session(world: World, http: httpx.AsyncClient) -> str:
    async with httpx.AsyncClient(base_url=world.server.url) as browser:
        await browser.post("/api/session", json={"email": "owner@a.example", "password": PASSWORD})
    return str((await http.get("/api/me/sessions")).json()["sessions"][0]["id"])


async def make_label(world: World, http: httpx.AsyncClient) -> str:
    name = await world.id_of("name")
    moved = await http.put(f"/api/prompts/{name}/labels/production", json={"version": 1})
    assert moved.status_code == 200, moved.text
    return "production"


async def make_experiment(world: World, http: httpx.AsyncClient) -> str:
    """Through its create operation, once its dataset has an item to run."""
    dataset_id = await world.id_of("dataset_id")
    added = await http.post(f"/api/datasets/{dataset_id}/items", json={"input": "hi"})
    assert added.status_code == 201, added.text
    return await world.created("experiment_id", http)


async def make_runs(world: World, http: httpx.AsyncClient) -> str:
    """Two runs of one dataset, for a comparison."""
    first = await world.id_of("experiment_id")
    return f"{first},{await world.created('experiment_id', http)}"


MAKE: dict[str, Callable[[World, httpx.AsyncClient], Awaitable[str]]] = {
    "label": make_label,
    "experiment_id": make_experiment,
    "ids": make_runs,
    "message_id": make_message,
    "trace_id": make_trace,
    "account_id": make_account,
    "user_id": make_user,
    "token_id": make_token,
    "session_id": make_session,
}
PUBLIC = {("post", "/api/session"), ("post", "/api/invites")}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS and (method, path) not in PUBLIC
    ]


def streams(operation: dict[str, Any]) -> bool:
    return "text/event-stream" in operation["responses"].get("200", {}).get("content", {})


async def status(http: httpx.AsyncClient, method: str, url: str, body: Any, sse: bool) -> int:
    if sse:
        async with http.stream("GET", url) as response:
            return response.status_code
    return (await http.request(method, url, json=body)).status_code


@pytest.fixture
async def world(live_server: LiveServer) -> World:
    async def people() -> dict[str, str]:
        accounts = Accounts(live_server.runtime.engine)
        tokens = {"admin": live_server.token}
        for who, account in (("owner", "a"), ("foreign", "b")):
            await accounts.add_account(account)
            await accounts.add_user(f"{who}@{account}.example", who, PASSWORD)
            await accounts.add_member(account, f"{who}@{account}.example", "owner")
            tokens[who] = await accounts.new_token(f"{who}@{account}.example")
        return tokens

    tokens = await live_server.arun(people())
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        spec = (await http.get("/openapi.json")).json()
    return World(live_server, spec, tokens)


async def test_every_operation_refuses_a_caller_without_a_token(world: World) -> None:
    async with world.client(None) as anonymous:
        for method, path, operation in operations(world.spec):
            url = await world.url(path, operation)
            body = body_for(operation, world.spec, world.ids)
            found = await status(anonymous, method, url, body, streams(operation))
            assert found == 401, (method, path, found)


async def test_every_operation_on_account_a_is_404_to_another_account(world: World) -> None:
    checked = 0
    urls = {path: await world.url(path, op) for _, path, op in operations(world.spec)}
    async with world.client("owner") as owner:
        before = (await owner.get(f"/api/chats/{await world.id_of('chat_id')}")).json()
    async with world.client("foreign") as foreign:
        for method, path, operation in operations(world.spec):
            if "{" not in path and not made_query(operation):
                continue  # collections: the caller's own (`..._sees_nothing_...` below)
            url = urls[path]
            body = body_for(operation, world.spec, world.ids)
            found = await status(foreign, method, url, body, streams(operation))
            assert found == 404, (method, path, found)
            checked += 1
    assert checked >= 10
    async with world.client("owner") as owner:  # nothing of A's was changed or deleted
        chat = await owner.get(f"/api/chats/{world.ids['chat_id']}")
        assert chat.status_code == 200 and chat.json()["chat"] == before["chat"]
        assert len(chat.json()["messages"]) == len(before["messages"])


async def test_another_account_sees_nothing_of_account_a_in_collections(world: World) -> None:
    await world.id_of("message_id")
    async with world.client("foreign") as foreign:
        for method, path, operation in operations(world.spec):
            if method != "get" or "{" in path or streams(operation):
                continue
            response = await foreign.get(path)
            if response.status_code == 200:
                text = response.text
                for name, value in world.ids.items():
                    if name not in ("user_id",):
                        assert value not in text, (path, name)


async def test_a_site_admin_may_read_every_resource_of_account_a(world: World) -> None:
    async with world.client("admin") as admin:
        for method, path, operation in operations(world.spec):
            if method != "get" or "/me/" in path:
                continue  # `me` is the caller's own, whoever asks
            url = await world.url(path, operation)
            if "no_" in url:
                continue  # nothing of that kind could be made
            found = await status(admin, "get", url, None, streams(operation))
            assert found == 200, (path, found)


async def test_the_websocket_follows_the_same_matrix(world: World) -> None:
    chat_id = await world.id_of("chat_id")
    url = world.server.url.replace("http", "ws") + "/api/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 401
    for who, expected in (("foreign", "error"), ("admin", "subscribed"), ("owner", "subscribed")):
        headers = {"Authorization": f"Bearer {world.tokens[who]}"}
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"op": "subscribe", "chat_id": chat_id}))
            frame = json.loads(await ws.recv())
            assert frame["op"] == expected, (who, frame)
            if expected == "error":
                assert frame["error"]["code"] == "not_found"


async def test_a_site_admin_naming_an_account_that_does_not_exist_gets_4xx_everywhere(
    world: World,
) -> None:
    """Every operation whose body may name an account (the one 500 the first fuzzing found)."""
    checked = 0
    async with world.client("admin") as admin:
        for method, path, operation in operations(world.spec):
            body = body_for(operation, world.spec, world.ids)
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            name = schema.get("$ref", "").rsplit("/", 1)[-1]
            fields = world.spec["components"]["schemas"].get(name, {}).get("properties", {})
            if not isinstance(body, dict) or "account_id" not in fields:
                continue
            url = await world.url(path)
            found = await admin.request(method, url, json={**body, "account_id": "acc_nope"})
            assert 400 <= found.status_code < 500, (method, path, found.status_code)
            checked += 1
    assert checked >= 2


def unbounded(schema: Any, spec: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """Places in `schema` of an integer with no maximum (the database's columns have one)."""
    if isinstance(schema, list):
        return [u for s in schema for u in unbounded(s, spec, where, seen)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return unbounded(spec["components"]["schemas"][name], spec, f"{where}>{name}", seen)
    found = [where] if schema.get("type") == "integer" and "maximum" not in schema else []
    for key, value in schema.items():
        if key == "properties":
            for field, sub in value.items():
                found += unbounded(sub, spec, f"{where}.{field}", seen)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            found += unbounded(value, spec, where, seen)
    return found


async def test_every_integer_a_request_may_send_has_a_maximum(world: World) -> None:
    """A huge number is a 422 at the door, never the database's overflow (a 500): the
    fuzzer found `prompt_version=2**70`."""
    found = []
    for method, path, operation in operations(world.spec):
        for parameter in operation.get("parameters", []):
            where = f"{method} {path} {parameter['name']}"
            found += unbounded(parameter.get("schema", {}), world.spec, where, set())
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        found += unbounded(body.get("schema", {}), world.spec, f"{method} {path} body", set())
    assert not found, "\n".join(found)

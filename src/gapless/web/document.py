"""The OpenAPI document a fuzzer can use: what FastAPI writes, plus what it cannot know.

Every operation gets the statuses the edge and the use cases answer, each with
the one error shape `{"error": {code, message}}` (FastAPI's `{"detail"}` 422 is
replaced: the app never sends it); the security schemes (a bearer token, or the
session cookie with its CSRF header) apply to all but the operations that say
`security: []`; a create (`POST /x`, 201) links to every operation on
`/x/{id}` with the id it returned, so a stateful fuzzer chains them. Routes
added later get all of this without a word here. Pure: a dict in, a dict out.
Imports nothing from gapless.
"""

from __future__ import annotations

import re
from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                # what a client can point at, e.g. an import's bad lines [{line, message}]
                "details": {"type": "array"},
            },
        }
    },
}
SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (gl_...)."},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "gapless_session",
        "description": "The browser's session (`__Host-gapless_session` over https); a "
        "request that changes state also sends `X-CSRF-Token` (from GET /api/session).",
    },
}
STATUSES = {
    "400": "NUL or a lone surrogate in the path, query or body; malformed JSON.",
    "401": "No credentials, or not valid ones.",
    "403": "A cookie-authenticated change without the session's CSRF token.",
    "404": "Not found, or not the caller's to see (existence is never revealed).",
    "408": "The body took longer than the server waits for one.",
    "409": "The resource's state forbids this.",
    "413": "The body is over the size limit.",
    "422": "The input has the wrong shape or values.",
    "429": "Too many requests (or failed sign-ins, or open streams): see `Retry-After`.",
}
PARAMETER = re.compile(r"^\{(\w+)\}$")
METHODS = ("get", "put", "post", "delete", "patch")


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = SECURITY
    spec["security"] = [{"bearer": []}, {"session": []}]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
    for item in spec.get("paths", {}).values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            public = operation.get("security") == []
            for status, description in STATUSES.items():
                if public and status in ("401", "403"):
                    continue
                answer: dict[str, Any] = {"description": description, "content": error}
                if status == "429":
                    answer["headers"] = retry
                responses[status] = answer
    link(spec)
    return spec


def link(spec: dict[str, Any]) -> None:
    """`POST /x` answering 201 links to each operation on `/x/{param}`: `{x_id}` is the new
    resource's `id`, any other `{name}` its field of that name (a prompt's `name`)."""
    paths: dict[str, Any] = spec.get("paths", {})
    for path, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        links = created.setdefault("links", {})
        for other, other_item in paths.items():
            head, _, tail = other.rpartition("/")
            found = PARAMETER.match(tail)
            if head != path or found is None:
                continue
            for method, operation in other_item.items():
                if method in METHODS and "operationId" in operation:
                    name = found.group(1)
                    field = "id" if name == "id" or name.endswith("_id") else name
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": {name: f"$response.body#/{field}"},
                    }

"""Schemathesis against a real server, from the OpenAPI document it serves: a bounded
number of generated requests per operation, valid and invalid, as an account's owner
and as a site admin (0 server errors, 0 answers outside the document), and with another
account's token on account A's real ids (0 answers in 2xx)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from tests.security.test_matrix import World, operations, streams, world

__all__ = ["world"]  # the fixture, shared with the matrix

EXAMPLES = 6  # per operation and mode: bounded, the suite shares two cores


def cases(world: World, **fixed: Any) -> list[tuple[str, str, st.SearchStrategy[Any]]]:
    schema = schemathesis.openapi.from_dict(world.spec)
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        definition = world.spec["paths"][operation.path][operation.method.lower()]
        if streams(definition):
            continue  # an event stream never ends: the matrix covers its status
        wanted = {
            name: value
            for name, value in fixed.get("path_parameters", {}).items()
            if "{" + name + "}" in operation.path
        }
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=wanted or None)
            found.append((operation.method, operation.path, strategy))
    return found


def fuzz(world: World, who: str, check: Any, **fixed: Any) -> None:
    """Every operation's examples, then every operation's failure at once."""
    headers = {"Authorization": f"Bearer {world.tokens[who]}"}
    failures: list[str] = []
    for method, path, strategy in cases(world, **fixed):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def run(case: Any) -> None:
            check(case, headers)

        try:
            run()
        except Exception as exc:
            failures.append(f"{method} {path} as {who}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)


def excluded(case: Any) -> list[Any]:
    found = [
        # A value the schema allows may still be refused by a rule it cannot state (the
        # current password, a weak new one, an unknown model): 422, documented.
        positive_data_acceptance,
        # A repeated query parameter is read as its last value (FastAPI), not refused.
        negative_data_rejection,
    ]
    return found


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_generated_requests_meet_no_server_error_and_no_answer_outside_the_document(
    world: World, who: str
) -> None:
    def check(case: Any, headers: dict[str, str]) -> None:
        response = case.call(base_url=world.server.url, headers=headers, timeout=30)
        if response.status_code == 400 and response.text == "Invalid HTTP request received.":
            return  # uvicorn's own parser refused the request (a Content-Length of "@DC")
        case.validate_response(response, excluded_checks=excluded(case))

    fuzz(world, who, check)


@pytest.fixture
async def ids(world: World) -> dict[str, str]:
    """Account A's ids of every kind the document names (made before the sync test runs)."""
    for _, path, _ in operations(world.spec):
        await world.url(path)
    return dict(world.ids)


def test_another_accounts_token_on_account_a_ids_never_gets_2xx(
    world: World, ids: dict[str, str]
) -> None:
    found = ids

    def check(case: Any, headers: dict[str, str]) -> None:
        if not any("{" in part for part in case.path.split("/")):
            return  # a collection of the caller's own
        response = case.call(base_url=world.server.url, headers=headers, timeout=30)
        assert response.status_code < 500, (case.method, case.path, response.text)
        assert not 200 <= response.status_code < 300, (case.method, case.formatted_path)

    fuzz(world, "foreign", check, path_parameters=found)


def test_sequences_that_follow_the_documents_links_meet_no_server_error(world: World) -> None:
    """Stateful: create, then read, change and delete what was created, as the links say."""
    schema = (
        schemathesis.openapi.from_dict(world.spec)
        .exclude(path_regex=r"/events$")  # streams never end
        .exclude(path="/api/me/tokens/{token_id}", method="DELETE")  # the run's own token
    )
    headers = {"Authorization": f"Bearer {world.tokens['owner']}"}

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": world.server.url, "headers": headers, "timeout": 30}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response, excluded_checks=excluded(case), transport_kwargs=kwargs or None
            )

    Workflow.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )

"""Agents scaled out: two API processes, a worker, PostgreSQL and Redis, all real, with a real
MCP server started by each process that calls a tool and a model served over the wire
(`agent_wire.py`). A decision, a stop or a death in one process is seen by every
other, a tool call is a part of the reply under the text's guarantee, and a tool
never runs twice for one call: the MCP tools count their calls in files.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from saq import Job as SaqJob
from saq.job import Status

from gapless.config import McpServer
from gapless.db import agents as db_agents
from gapless.db import replies as db_replies
from gapless.db.tables import generations
from gapless.jobs.saq import SaqRunner, queue_from_url
from tests.scale.agent_wire import AgentWire, endpoint
from tests.scale.cluster import Cluster, Process, until
from tests.scale.test_faults import CONVERGE, Watchers, check_clients, send, start_chat
from tests.support.clients import Tab
from tests.support.mcp_setup import Files

SCRIPT = Path(__file__).with_name("mcp_hold.py")
KEY = "held"  # the gate `mcp.hold` waits at (its arguments from the wire model)


@dataclass
class Rig:
    """The cluster's model and MCP server, and the files the tools count their calls in."""

    cluster: Cluster
    wire: AgentWire
    files: Files
    following: list[Watchers] = field(default_factory=list)

    def watchers(self, a: str, b: str, chat_id: str) -> Watchers:
        """Two clients of the chat (`Watchers`), stopped with the rig if a test fails first."""
        found = Watchers(self.cluster, a, b, chat_id)
        self.following.append(found)
        return found

    async def unfollow(self) -> None:
        tasks = [task for watchers in self.following for task in watchers.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def calls(self, key: str = KEY) -> int:
        """How many `hold` calls started, in any process."""
        path = self.files.gates / f"{key}.calls"
        return len(path.read_text().split()) if path.exists() else 0

    def open(self, key: str = KEY) -> None:
        (self.files.gates / f"{key}.open").touch()

    def leftovers(self) -> list[int]:
        """MCP servers of this test still alive (a killed worker's child may outlive it)."""
        found = list(self.files.pids())
        calls = self.files.gates / f"{KEY}.calls"
        if calls.exists():
            found += [int(pid) for pid in calls.read_text().split()]
        alive = []
        for pid in sorted(set(found)):
            with suppress(OSError):
                if str(SCRIPT).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    alive.append(pid)
        return alive


@asynccontextmanager
async def rigged(cluster: Cluster) -> AsyncIterator[Rig]:
    """Configure every process of `cluster` with the wire model and the MCP server `mcp`."""
    wire = AgentWire()
    await wire.start()
    files = Files(cluster.tmp / "mcp")
    server = McpServer(name="mcp", command=sys.executable, args=(str(SCRIPT),), env=files.env())
    cluster.settings["GAPLESS_ENDPOINTS"] = endpoint(wire.url)
    cluster.settings["GAPLESS_MCP_SERVERS"] = json.dumps([server.model_dump(mode="json")])
    rig = Rig(cluster, wire, files)
    try:
        yield rig
    finally:
        await rig.unfollow()
        rig.open()  # a call still held anywhere may end
        await cluster.close()  # the processes first: their MCP servers end with them
        for pid in rig.leftovers():  # started by this test (their pids are in its files)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await wire.close()


async def scaled(cluster: Cluster) -> tuple[str, str, Process]:
    """Two API processes and a worker; the second API and the worker start together, once
    the first has migrated the fresh database."""
    a = await cluster.api()
    b, worker = await asyncio.gather(cluster.api(), cluster.worker())
    return a, b, worker


async def worker_runs(cluster: Cluster, reply_id: str) -> bool:
    """Whether the queue knows a worker runs the reply, asked as the API's stop asks it."""

    async def ended(_: str) -> bool:
        return False

    async def held(reply_id: str) -> bool:
        return await db_replies.held(cluster.engine, reply_id)

    runner = SaqRunner(cluster.queue, ended, held=held)
    try:
        await runner.queue.connect()  # as `stop` connects before it asks
        return await runner.running(reply_id)
    finally:
        await runner.close()


async def make_agent(http: httpx.AsyncClient, tool: str, **fields: Any) -> dict[str, Any]:
    """An agent whose model calls `tool` (an MCP tool `mcp.<name>`), unless told its model."""
    model = f"wire:{tool.replace('.', '__')}"
    body = {"name": "scaled", "model": model, "tools": [tool], **fields}
    response = await http.post("/api/agents", json=body)
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


def tools_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in message["parts"] if p["type"] == "tool"]


async def paused(cluster: Cluster, watchers: Watchers, reply_id: str) -> dict[str, Any]:
    """The reply once it awaits approval in the database and in every client's view."""
    found = await until(
        lambda: cluster.message(reply_id), lambda m: m["status"] == "requires_action", CONVERGE
    )

    async def statuses() -> list[str]:
        return [t.replica.messages.get(reply_id, {}).get("status", "") for t in watchers.tabs]

    await until(statuses, lambda seen: seen == ["requires_action"] * 2, CONVERGE)
    return found


def check_parts(tabs: tuple[Tab, ...], reply_id: str, stored: dict[str, Any]) -> None:
    """Every client holds the database's Message, parts and all, and only ever showed
    prefixes of it with tool statuses moving forward (besides `check_clients`)."""
    check_clients(tabs, reply_id, stored)
    for tab in tabs:
        assert tab.replica.messages[reply_id] == stored
        tab.assert_prefixes(reply_id, stored)


async def decide(http: httpx.AsyncClient, reply_id: str, call_id: str) -> httpx.Response:
    return await http.post(
        f"/api/messages/{reply_id}/tools/{call_id}", json={"decision": "approve"}
    )


async def test_an_approval_sent_to_the_other_api_process_runs_the_tool_exactly_once(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        a, b, _ = await scaled(cluster)
        async with cluster.client(a) as http_a, cluster.client(b) as http_b:
            agent = await make_agent(http_a, "mcp.bump")
            assert agent["approval"] == {"mcp.bump": "always"}  # the tool is destructive
            chat_id = await start_chat(http_a, agent_id=agent["id"])
            watchers = rig.watchers(a, b, chat_id)
            await watchers.load()
            reply_id = await send(http_a, chat_id)  # posted to `a`
            watchers.follow(reply_id)
            waiting = await paused(cluster, watchers, reply_id)
            (call,) = tools_of(waiting)
            assert (call["name"], call["status"], call["arguments"]) == (
                "mcp.bump",
                "awaiting_approval",
                "{}",
            )
            assert rig.files.bumps() == 0
            response = await decide(http_b, reply_id, call["id"])  # decided on `b`
            assert response.status_code == 200, response.text
            await watchers.done()
            again = await decide(http_a, reply_id, call["id"])
            assert again.status_code == 409, again.text
        stored = await cluster.message(reply_id)
        assert stored["status"] == "complete" and stored["error"] is None, cluster.logs()
        (done,) = tools_of(stored)
        assert done["status"] == "complete" and "1" in done["output"]
        assert stored["content"] == f"Calling it.The tool said {done['output']}."
        assert rig.files.bumps() == 1  # ran once, in the worker, after the decision
        check_parts(watchers.tabs, reply_id, stored)
        (row,) = await db_agents.calls_of(cluster.engine, reply_id)
        assert (row["status"], row["decision"]) == ("complete", "approve")


@pytest.mark.parametrize("approval", ["never", "always"])
async def test_a_worker_killed_while_a_tool_runs_ends_the_reply_interrupted_and_the_tool_never_runs_again(  # noqa: E501
    any_queue_cluster: Cluster, approval: str
) -> None:
    """`never`: the tool runs in the reply's first run; `always`: in the run the approval
    (sent to the other API process) submitted."""
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        a, b, victim = await scaled(cluster)
        async with cluster.client(a) as http_a, cluster.client(b) as http_b:
            agent = await make_agent(http_a, "mcp.hold", approval={"mcp.hold": approval})
            chat_id = await start_chat(http_a, agent_id=agent["id"])
            watchers = rig.watchers(a, b, chat_id)
            await watchers.load()
            reply_id = await send(http_a, chat_id)
            watchers.follow(reply_id)
            if approval == "always":
                (call,) = tools_of(await paused(cluster, watchers, reply_id))
                response = await decide(http_b, reply_id, call["id"])
                assert response.status_code == 200, response.text

            async def started() -> int:
                return rig.calls()

            await until(started, lambda n: n == 1, CONVERGE)  # the tool holds, mid-run
            victim.kill()
            killed = time.monotonic()
            replacement = asyncio.create_task(cluster.worker())  # it starts while the reaper acts
            await watchers.done()
            noticed = time.monotonic() - killed
        stored = await cluster.message(reply_id)
        assert stored["status"] == "failed" and stored["error"]["code"] == "interrupted"
        assert noticed < 8.0, noticed  # lease 2 s, a reaper's look every 0.67 s, the load
        (part,) = tools_of(stored)
        assert part["status"] == "failed" and part["error"]["code"] == "interrupted", part
        assert part["arguments"] == '{"key": "held"}'
        check_parts(watchers.tabs, reply_id, stored)
        (row,) = await db_agents.calls_of(cluster.engine, reply_id)
        assert row["status"] == "failed" and row["error"]["code"] == "interrupted", row

        # A new worker, and the reply's job delivered again: nothing runs, nothing changes.
        await replacement
        queue = queue_from_url(cluster.queue)
        await queue.connect()
        try:
            key = f"again-{reply_id}"
            job = SaqJob("generate", kwargs={"reply_id": reply_id}, key=key, timeout=0)
            await queue.enqueue(job)

            async def delivered() -> Any:
                return await queue.job(key)

            await until(delivered, lambda j: j is not None and j.status == Status.COMPLETE, 30)
        finally:
            await queue.disconnect()
        rig.open()  # were the call held anywhere still, it would end now; no new one starts
        assert rig.calls() == 1
        assert await cluster.message(reply_id) == stored


async def test_a_stop_sent_to_the_other_api_process_while_awaiting_approval_cancels_the_call(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        a, b, _ = await scaled(cluster)
        async with cluster.client(a) as http_a, cluster.client(b) as http_b:
            agent = await make_agent(http_a, "mcp.bump")
            chat_id = await start_chat(http_a, agent_id=agent["id"])
            watchers = rig.watchers(a, b, chat_id)
            await watchers.load()
            reply_id = await send(http_a, chat_id)
            watchers.follow(reply_id)
            (call,) = tools_of(await paused(cluster, watchers, reply_id))
            response = await http_b.post(f"/api/messages/{reply_id}/stop")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "cancelled"
            await watchers.done()
            late = await decide(http_a, reply_id, call["id"])
            assert late.status_code == 409, late.text
        stored = await cluster.message(reply_id)
        assert stored["status"] == "cancelled" and stored["error"] is None
        assert stored["content"] == "Calling it."  # the text before the call is kept
        (part,) = tools_of(stored)
        assert part["status"] == "cancelled", part
        check_parts(watchers.tabs, reply_id, stored)
        (row,) = await db_agents.calls_of(cluster.engine, reply_id)
        assert row["status"] == "cancelled" and row["decision"] is None
        assert rig.files.bumps() == 0


@pytest.mark.parametrize("approval", ["never", "always"])
async def test_a_stop_sent_to_the_other_api_process_while_a_tool_runs_cancels_it(
    any_queue_cluster: Cluster, approval: str
) -> None:
    """`never`: the tool runs in the reply's first run; `always`: in the run the approval
    submitted (a job of its own, keyed by the call)."""
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        a, b, _ = await scaled(cluster)
        async with cluster.client(a) as http_a, cluster.client(b) as http_b:
            agent = await make_agent(http_a, "mcp.hold", approval={"mcp.hold": approval})
            chat_id = await start_chat(http_a, agent_id=agent["id"])
            watchers = rig.watchers(a, b, chat_id)
            await watchers.load()
            reply_id = await send(http_a, chat_id)
            watchers.follow(reply_id)
            if approval == "always":
                (call,) = tools_of(await paused(cluster, watchers, reply_id))
                response = await decide(http_a, reply_id, call["id"])
                assert response.status_code == 200, response.text

            async def started() -> int:
                return rig.calls()

            await until(started, lambda n: n == 1, CONVERGE)
            # What the stop route asks before it waits for the worker to end the run.
            assert await worker_runs(cluster, reply_id), "no worker is known to run the reply"
            response = await http_b.post(f"/api/messages/{reply_id}/stop")
            assert response.status_code == 200, response.text
            answered = response.json()
            await watchers.done()
        stored = await cluster.message(reply_id)
        assert stored["status"] == "cancelled" and stored["error"] is None
        assert answered == stored
        (part,) = tools_of(stored)
        assert part["status"] == "cancelled", part
        check_parts(watchers.tabs, reply_id, stored)
        (row,) = await db_agents.calls_of(cluster.engine, reply_id)
        assert row["status"] == "cancelled", row
        assert rig.calls() == 1


async def test_a_reply_awaiting_approval_outlives_its_worker_and_a_new_one_runs_the_call_once(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        a, b, victim = await scaled(cluster)
        async with cluster.client(a) as http_a, cluster.client(b) as http_b:
            agent = await make_agent(http_a, "mcp.bump")
            chat_id = await start_chat(http_a, agent_id=agent["id"])
            watchers = rig.watchers(a, b, chat_id)
            await watchers.load()
            reply_id = await send(http_a, chat_id)
            watchers.follow(reply_id)
            (call,) = tools_of(await paused(cluster, watchers, reply_id))
            victim.kill()  # no run holds a paused reply: nothing of it dies with the worker
            await cluster.worker()  # seconds: past the lease, the reapers have looked
            assert (await cluster.message(reply_id))["status"] == "requires_action"
            response = await decide(http_b, reply_id, call["id"])
            assert response.status_code == 200, response.text
            await watchers.done()
        stored = await cluster.message(reply_id)
        assert stored["status"] == "complete" and stored["error"] is None, cluster.logs()
        assert [p["status"] for p in tools_of(stored)] == ["complete"]
        assert rig.files.bumps() == 1
        check_parts(watchers.tabs, reply_id, stored)


async def test_two_calls_of_one_step_approved_at_once_on_two_api_processes_go_on_once(
    any_queue_cluster: Cluster,
) -> None:
    """Each decision takes the reply's row lock: exactly one of them sees the step decided
    and submits the run that goes on."""
    cluster = any_queue_cluster
    async with rigged(cluster) as rig:
        a, b, _ = await scaled(cluster)
        async with cluster.client(a) as http_a, cluster.client(b) as http_b:
            agent = await make_agent(http_a, "mcp.bump", model="wire:bump-twice")
            chat_id = await start_chat(http_a, agent_id=agent["id"])
            watchers = rig.watchers(a, b, chat_id)
            await watchers.load()
            reply_id = await send(http_a, chat_id)
            watchers.follow(reply_id)
            waiting = tools_of(await paused(cluster, watchers, reply_id))
            assert [p["status"] for p in waiting] == ["awaiting_approval"] * 2
            first, second = await asyncio.gather(
                decide(http_a, reply_id, waiting[0]["id"]),
                decide(http_b, reply_id, waiting[1]["id"]),
            )
            assert (first.status_code, second.status_code) == (200, 200), (first, second)
            await watchers.done()
        stored = await cluster.message(reply_id)
        assert stored["status"] == "complete" and stored["error"] is None, cluster.logs()
        assert [p["status"] for p in tools_of(stored)] == ["complete", "complete"]
        assert rig.files.bumps() == 2  # each call once
        outputs = [p["output"] for p in tools_of(stored)]
        assert stored["content"] == f"Calling it.The tool said {' and '.join(outputs)}."
        check_parts(watchers.tabs, reply_id, stored)
        async with cluster.engine.connect() as conn:
            steps = await conn.scalars(
                sa.select(generations.c.step).where(generations.c.message_id == reply_id)
            )
            assert sorted(steps) == [1, 2]  # one model call per step: the run went on once

"""Seed realistic traces for the dashboard and the benchmark: `python -m gapless.observe.seed`.

Spreads over `days` (90 by default, busier in working hours and growing over
time): accounts with members and agents, chats, runs of 1 to 5 steps with tool
calls between, six models with their own latency, time to first chunk, sizes
and prices, 2 % provider errors, some interruptions, stops and failed tools.
Everything goes through the storage layer (`db.accounts`, `db.agents`,
`db.traces`, `db.usage`), the roll-ups included, so what the API reads is
what a real recorder would have written. Deterministic for a given `seed`.
Imports `config`, `db`, `prices`, `observe.rows`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import agents as db_agents
from gapless.db import engine as db_engine
from gapless.db import traces as db_traces
from gapless.db import usage as db_usage
from gapless.db.rows import new_id
from gapless.observe import rows
from gapless.prices import DEFAULT_PRICES, price_of

# model, share of calls, median duration ms, median TTFT ms, median output tokens
MODELS = [
    ("openai:gpt-4o-mini", 0.38, 1800, 350, 220),
    ("openai:gpt-4o", 0.14, 3200, 520, 300),
    ("anthropic:claude-sonnet-4-5", 0.2, 4200, 900, 380),
    ("anthropic:claude-haiku-4-5", 0.16, 1500, 420, 200),
    ("local:smollm2", 0.06, 2600, 180, 120),
    ("demo:echo", 0.06, 600, 40, 60),
]
TOOLS = ["calculator", "current_time", "search_chats", "fetch", "docs.search", "crm.lookup"]
QUESTIONS = [
    "What is the refund policy for annual plans?",
    "Summarise the incident report from last night",
    "How many open tickets mention billing?",
    "Translate this paragraph into German",
    "Write a SQL query for monthly active users",
    "What time is it in Tokyo?",
    "Compute 17% of 2,340",
    "Draft a reply to the customer about the delay",
]
CHUNK = 2000  # traces per transaction


@dataclass
class Plan:
    generations: int
    days: float = 90.0
    accounts: int = 4
    users_per_account: int = 10
    agents_per_account: int = 3
    seed: int = 7
    end: datetime | None = None


@dataclass
class _World:
    accounts: list[str]
    users: dict[str, list[str]]
    agents: dict[str, list[tuple[str, str]]]
    chats: dict[str, list[str]]


async def seed(engine: Engine, plan: Plan) -> dict[str, Any]:
    """Write about `plan.generations` model calls (whole runs); returns what was written."""
    rng = random.Random(plan.seed)
    end = plan.end or datetime.now(UTC)
    world = await _world(engine, plan, rng)
    usage: dict[tuple[Any, ...], dict[str, Any]] = {}
    chats: dict[tuple[Any, ...], dict[str, Any]] = {}
    made = traces = 0
    while made < plan.generations:
        trace_rows: list[dict[str, Any]] = []
        obs_rows: list[dict[str, Any]] = []
        for _ in range(CHUNK):
            if made >= plan.generations:
                break
            trace, observations = _run(rng, world, plan, end)
            made += trace["generations"]
            trace_rows.append(trace)
            obs_rows.extend(observations)
            who = {k: trace[k] for k in ("account_id", "user_id", "agent_id", "chat_id")}
            for row in observations:
                if row["kind"] == "generation":
                    rows.add_into(
                        usage, rows.usage_rows(row, who), db_usage.USAGE_KEYS, db_usage.SUMMED
                    )
            rows.add_into(chats, [_chat_row(trace)], ("chat_id",), frozenset(db_usage.CHAT_SUMS))
        traces += len(trace_rows)
        await db_traces.insert_seeded(engine, trace_rows, obs_rows)
    async with engine.begin() as conn:
        await db_usage.add_usage(conn, list(usage.values()))
        await db_usage.add_chat_usage(conn, list(chats.values()))
    return {"generations": made, "traces": traces, "accounts": world.accounts}


async def _world(engine: Engine, plan: Plan, rng: random.Random) -> _World:
    world = _World([], {}, {}, {})
    chats_per_account = max(1, int(plan.generations / 1.5 / 12 / plan.accounts))
    for a in range(plan.accounts):
        account = await db_accounts.create_account(engine, f"seed-{plan.seed}-{a}")
        world.accounts.append(account)
        world.users[account] = []
        for u in range(plan.users_per_account):
            user = await db_accounts.create_user(
                engine,
                f"u{u}.a{a}.s{plan.seed}.{rng.randrange(10**9)}@seed.test",
                f"User {a}.{u}",
                None,
            )
            await db_accounts.add_member(engine, account, user)
            world.users[account].append(user)
        world.agents[account] = []
        for g in range(plan.agents_per_account):
            name = ["support", "analyst", "translator", "coder"][g % 4]
            agent = await db_agents.create_agent(
                engine,
                account,
                {
                    "name": name,
                    "description": "",
                    "instructions": "",
                    "model": MODELS[g % len(MODELS)][0],
                    "tools": TOOLS[:3],
                    "approval": {},
                    "step_limit": 10,
                },
            )
            world.agents[account].append((agent["id"], name))
        world.chats[account] = await db_traces.insert_seed_chats(
            engine, account, chats_per_account, MODELS[0][0]
        )
    return world


def _when(rng: random.Random, plan: Plan, end: datetime) -> datetime:
    """Busier in working hours (UTC 8-18) and growing over the period."""
    while True:
        back = plan.days * (1 - math.sqrt(rng.random()))  # more recent runs are more frequent
        when = end - timedelta(days=back)
        if rng.random() < (1.0 if 8 <= when.hour < 18 else 0.35):
            return when


def _model(rng: random.Random) -> tuple[str, float, float, float, float]:
    pick = rng.random()
    for model in MODELS:
        pick -= model[1]
        if pick <= 0:
            return model
    return MODELS[0]


def _ms(rng: random.Random, median: float, spread: float = 0.6) -> float:
    return round(median * math.exp(rng.gauss(0, spread)), 1)


def _run(
    rng: random.Random, world: _World, plan: Plan, end: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    account = rng.choice(world.accounts)
    agent = rng.choice(world.agents[account]) if rng.random() < 0.7 else None
    model, _, duration, ttft, output = _model(rng)
    steps = 1 if rng.random() < 0.7 else rng.choice((2, 2, 2, 3, 3, 4, 5))
    started = _when(rng, plan, end)
    trace_id = new_id("trc")
    question = rng.choice(QUESTIONS)
    clock = started + timedelta(milliseconds=rng.uniform(2, 30))
    observations: list[dict[str, Any]] = []
    status = "complete"
    error: dict[str, str] | None = None
    totals = {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost": 0.0}
    for step in range(1, steps + 1):
        gen_status = "complete"
        roll = rng.random()
        if roll < 0.02:
            gen_status, error = "failed", {"code": "provider_error", "message": "upstream 529"}
        elif roll < 0.025:
            gen_status, error = "interrupted", {"code": "interrupted", "message": "worker lost"}
        elif roll < 0.035:
            gen_status = "cancelled"
        length = _ms(rng, duration)
        first = min(length, _ms(rng, ttft, 0.5))
        tokens_in = int(_ms(rng, 600 + 400 * step, 0.5))
        tokens_out = 0 if gen_status == "failed" else int(_ms(rng, output, 0.7))
        price = price_of(model, DEFAULT_PRICES)
        cost = (tokens_in * price.input + tokens_out * price.output) / 1e6 if price else None
        cached = int(tokens_in * 0.5) if step > 1 else 0
        last = step == steps or gen_status != "complete"
        answer = f"Here is what I found about: {question.lower()}" if last else ""
        observations.append(
            {
                "id": new_id("obs"),
                "trace_id": trace_id,
                "parent_id": None,
                "account_id": account,
                "kind": "generation",
                "name": f"chat {model}",
                "status": gen_status,
                "started_at": clock,
                "ended_at": clock + timedelta(milliseconds=length),
                "duration_ms": length,
                "ttft_ms": None if gen_status == "failed" else first,
                "provider": model.partition(":")[0],
                "model": model,
                "step": step,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "reasoning_tokens": 0,
                "cached_tokens": cached,
                "cost": cost,
                "finish_reason": "stop" if last else "tool_calls",
                "error_code": (error or {}).get("code") if gen_status != "complete" else None,
                "error_message": (error or {}).get("message") if gen_status != "complete" else None,
                "attributes": '{"settings":{"temperature":0.7}}',
                "input": f'[{{"role":"user","content":"{question}"}}]',
                "output": answer,
            }
        )
        totals["input_tokens"] += tokens_in
        totals["output_tokens"] += tokens_out
        totals["cached_tokens"] += cached
        totals["cost"] += cost or 0.0
        clock += timedelta(milliseconds=length)
        if gen_status != "complete":
            status = gen_status
            break
        if step < steps:
            longest = 0.0
            for call in range(rng.choice((1, 1, 2))):
                tool = rng.choice(TOOLS)
                took = _ms(rng, 120, 1.0)
                longest = max(longest, took)
                failed = rng.random() < 0.05
                observations.append(
                    {
                        "id": new_id("obs"),
                        "trace_id": trace_id,
                        "parent_id": None,
                        "account_id": account,
                        "kind": "tool",
                        "name": tool,
                        "status": "failed" if failed else "complete",
                        "started_at": clock,
                        "ended_at": clock + timedelta(milliseconds=took),
                        "duration_ms": took,
                        "step": step,
                        "error_code": "tool_error" if failed else None,
                        "error_message": "timed out" if failed else None,
                        "attributes": f'{{"call_id":"call_{step}_{call}"}}',
                        "input": '{"query":"x"}',
                        "output": None if failed else "42",
                    }
                )
            clock += timedelta(milliseconds=longest)
    if status == "cancelled":
        error = None
    if status == "complete":
        error = None
    calls = [o for o in observations if o["kind"] == "generation"]
    generations = len(calls)
    trace = {
        "id": trace_id,
        "reply_id": "msg_" + trace_id[4:],
        "account_id": account,
        "chat_id": rng.choice(world.chats[account]),
        "user_id": rng.choice(world.users[account]),
        "agent_id": agent[0] if agent else None,
        "agent_name": agent[1] if agent else None,
        "model": model,
        "status": status,
        "error_code": (error or {}).get("code"),
        "error_message": (error or {}).get("message"),
        "started_at": started,
        "ended_at": clock,
        "duration_ms": rows.ms_between(started, clock),
        "ttft_ms": observations[0]["ttft_ms"],
        "steps": generations,
        "generations": generations,
        "tools": len(observations) - generations,
        "reasoning_tokens": 0,
        **totals,
        "input": question,
        "output": calls[-1]["output"] or None,
    }
    return trace, observations


def _chat_row(trace: dict[str, Any]) -> dict[str, Any]:
    return {
        "chat_id": trace["chat_id"],
        "account_id": trace["account_id"],
        "traces": 1,
        "generations": trace["generations"],
        "tools": trace["tools"],
        "input_tokens": trace["input_tokens"],
        "output_tokens": trace["output_tokens"],
        "cost": trace["cost"],
        "duration_ms": trace["duration_ms"] or 0.0,
        "last_at": trace["ended_at"],
    }


async def main(url: str, plan: Plan) -> None:
    engine = db_engine.create(url)
    await db_engine.migrate(engine)
    began = time.perf_counter()
    done = await seed(engine, plan)
    await engine.dispose()
    took = time.perf_counter() - began
    print(
        f"seeded {done['generations']} generations in {done['traces']} traces "
        f"({len(done['accounts'])} accounts) in {took:.1f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--generations", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(
        main(args.database_url, Plan(args.generations, args.days, args.accounts, seed=args.seed))
    )

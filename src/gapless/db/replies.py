"""The writes of a reply's run, and the reads that watch runs: take, flush, pause, finish.

Every write to a reply's row is conditional on the reply being unfinished and
on the run's lease (a fencing token), so a stopped, interrupted or superseded
run can never overwrite the final state. The statements are built once and
`prepared` (on SQLite they run on the driver, `db.prepared`): a reply's start,
flushes and end are the hottest writes there are. Imports `db.tables`,
`db.rows`, `db.chats` (the statuses, the message read), `db.agents`,
`db.generations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa

from gapless.db import Engine
from gapless.db.agents import lock_reply, undecided
from gapless.db.chats import MESSAGE, UNFINISHED
from gapless.db.generations import INSERT as INSERT_GENERATION
from gapless.db.prepared import prepared
from gapless.db.rows import message_json, now
from gapless.db.tables import messages

RUNNING = ("pending", "streaming")  # what a process runs (requires_action waits for a person)


async def unfinished(engine: Engine) -> list[dict[str, Any]]:
    """Every reply that is still pending or streaming (to end after a crash or restart); one
    that requires action waits for a person, not for a process, and is left alone."""
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(messages).where(messages.c.status.in_(RUNNING)))
        return [message_json(r) for r in rows]


async def unfinished_positions(engine: Engine) -> dict[str, list[str]]:
    """chat id -> stored positions of its unfinished replies (what the log must keep)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(messages.c.chat_id, messages.c.position).where(
                messages.c.status.in_(UNFINISHED), messages.c.position.is_not(None)
            )
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row.chat_id, []).append(row.position)
        return found


class Start(NamedTuple):
    """A run taking its reply: the lease, the log position it starts from (before any
    delta), the prompt version its agent uses (JSON) and its first generation record."""

    message_id: str
    position: str
    lease: str
    record: Mapping[str, Any] | None = None
    prompt: str | None = None


_START = prepared(
    messages.update()
    .where(
        messages.c.id == sa.bindparam("b_message"),
        # a fresh run, or going on (OR, not IN: a plan does not expand IN lists)
        sa.or_(messages.c.status == "pending", messages.c.status == "requires_action"),
        messages.c.lease.is_(None),
    )
    .values(
        lease=sa.bindparam("b_lease"),
        position=sa.bindparam("b_position"),
        prompt=sa.bindparam("b_prompt"),
        updated_at=sa.bindparam("b_stamp"),
    )
)


async def start_reply(
    engine: Engine,
    message_id: str,
    position: str,
    lease: str,
    record: Mapping[str, Any] | None = None,
    prompt: str | None = None,
) -> bool:
    """Take the reply for one run, storing the log position it starts from (before any delta)
    and the prompt version its agent uses (JSON), and insert its generation `record` in the
    same transaction when it was taken."""
    (taken,) = await start_replies(engine, [Start(message_id, position, lease, record, prompt)])
    return taken is True


async def start_replies(engine: Engine, starts: list[Start]) -> list[bool | Exception]:
    """`start_reply` for each, in one transaction (group commit of the runs that start in
    one loop turn: `together`): whether each was taken (False: stopped, or another run's).
    Rows are taken in the order of their ids (two groups at once never wait in a circle)."""
    stamp = now()
    taken: list[bool | Exception] = [False] * len(starts)
    records = []
    async with engine.begin() as conn:
        for i in sorted(range(len(starts)), key=lambda i: starts[i].message_id):
            start = starts[i]
            values = {
                "b_message": start.message_id,
                "b_lease": start.lease,
                "b_position": start.position,
                "b_prompt": start.prompt,
                "b_stamp": stamp,
            }
            result = await conn.execute(_START, values)
            taken[i] = result.rowcount == 1
            if taken[i] and start.record is not None:
                records.append(start.record)
        if records:
            await conn.execute(INSERT_GENERATION, records)
    return taken


class Flush(NamedTuple):
    """One reply's debounced write: text, parts, seq and the position of the last delta it
    reflects."""

    reply_id: str
    lease: str
    content: str
    thinking: str
    parts: str | None  # JSON; None while they follow from the texts
    seq: int
    position: str


def _leased(statement: Any) -> Any:
    """`WHERE id = :b_id AND lease = :b_lease AND status IN unfinished`, for one row of many."""
    return statement.where(
        messages.c.id == sa.bindparam("b_id"),
        messages.c.lease == sa.bindparam("b_lease"),
        sa.or_(*(messages.c.status == status for status in UNFINISHED)),  # no IN: executemany
    )


_FLUSH = prepared(
    _leased(messages.update()).values(
        content=sa.bindparam("b_content"),
        thinking=sa.bindparam("b_thinking"),
        parts=sa.bindparam("b_parts"),
        seq=sa.bindparam("b_seq"),
        position=sa.bindparam("b_position"),
        status="streaming",
        updated_at=sa.bindparam("b_stamp"),
    )
)
_TOUCH = prepared(_leased(messages.update()).values(updated_at=sa.bindparam("b_stamp")))
_HOLDERS = sa.select(messages.c.id, messages.c.lease).where(
    messages.c.id.in_(sa.bindparam("ids", expanding=True)), messages.c.status.in_(UNFINISHED)
)


async def write_replies(
    engine: Engine, flushes: list[Flush], touches: list[tuple[str, str]]
) -> set[str]:
    """The debounced writes of many replies, and the heartbeats (`updated_at` only) of others,
    in one transaction; answers the ids whose row was written (still unfinished and
    leased to the writer). One statement per kind, executed for many rows at once."""
    stamp = now()
    wanted = {(f.reply_id, f.lease) for f in flushes} | set(touches)
    if not wanted:
        return set()
    async with engine.begin() as conn:
        if flushes:
            await conn.execute(
                _FLUSH,
                [
                    {
                        "b_id": f.reply_id,
                        "b_lease": f.lease,
                        "b_content": f.content,
                        "b_thinking": f.thinking,
                        "b_parts": f.parts,
                        "b_seq": f.seq,
                        "b_position": f.position,
                        "b_stamp": stamp,
                    }
                    for f in flushes
                ],
            )
        if touches:
            await conn.execute(
                _TOUCH, [{"b_id": i, "b_lease": lease, "b_stamp": stamp} for i, lease in touches]
            )
        # Which rows those were (an executemany tells no row apart): read in the same
        # transaction, after the writes, so the answer is what the writes met.
        held = await conn.execute(_HOLDERS, {"ids": sorted({i for i, _ in wanted})})
        return {row.id for row in held if (row.id, row.lease) in wanted}


_UNFINISHED = sa.or_(*(messages.c.status == status for status in UNFINISHED))  # no IN: a plan
_FINISH_ANY = prepared(
    messages.update().where(messages.c.id == sa.bindparam("b_message"), _UNFINISHED)
)
_FINISH_LEASED = prepared(_FINISH_ANY.where(messages.c.lease == sa.bindparam("b_lease")))


async def finish_reply(
    engine: Engine, message_id: str, lease: str | None, status: str, **values: Any
) -> dict[str, Any] | None:
    """End an unfinished reply (the last write before its final event); None when it had ended."""
    sets = {"status": status, "position": None, "updated_at": now(), **values}
    async with engine.begin() as conn:
        if lease is None:  # the SET clause is the keys of `sets` (compiled once per set of keys)
            result = await conn.execute(_FINISH_ANY, {**sets, "b_message": message_id})
        else:
            result = await conn.execute(
                _FINISH_LEASED, {**sets, "b_message": message_id, "b_lease": lease}
            )
        if result.rowcount != 1:
            return None
        row = (await conn.execute(MESSAGE, {"b_message": message_id})).one()
    return message_json(row)


async def pause_reply(
    engine: Engine, message_id: str, lease: str, **values: Any
) -> dict[str, Any] | bool:
    """A run leaves its reply `requires_action` (text, parts and seq written, its lease
    released) while a call awaits approval. Answers the paused Message; True when every
    call was decided meanwhile (the run goes on instead); False when the lease was lost."""
    async with engine.begin() as conn:
        if not await lock_reply(conn, message_id, messages.c.lease == lease, _UNFINISHED):
            return False
        if not await undecided(conn, message_id):
            return True
        await conn.execute(
            messages.update()
            .where(messages.c.id == message_id)
            .values(status="requires_action", lease=None, position=None, updated_at=now(), **values)
        )
        row = (await conn.execute(MESSAGE, {"b_message": message_id})).one()
    return message_json(row)


async def held(engine: Engine, message_id: str) -> bool:
    """Whether a run holds the reply (an unfinished row with a lease; the run may have died
    since: the reaper ends it then)."""
    async with engine.connect() as conn:
        lease = await conn.scalar(
            sa.select(messages.c.lease).where(messages.c.id == message_id, _UNFINISHED)
        )
    return lease is not None


async def leased_replies(engine: Engine) -> list[tuple[str, str, Any]]:
    """Every unfinished reply a run holds: (id, lease, stamp of the run's last write).
    Whether the stamp still moves is for the reaper to judge on its own clock (`leases`)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(messages.c.id, messages.c.lease, messages.c.updated_at).where(
                messages.c.status.in_(UNFINISHED), messages.c.lease.is_not(None)
            )
        )
        return [(row.id, row.lease, row.updated_at) for row in rows]

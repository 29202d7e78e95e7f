"""The storage layer on both engines (SQLite and the machine's PostgreSQL): migrations,
the message tree, conditional (leased) writes, and what the state read returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gapless import passwords
from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import chats as db
from gapless.db import engine as db_engine
from gapless.db import generations as records
from gapless.db import replies as db_replies


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
    created = db_engine.create(url)
    await db_engine.migrate(created)
    await db_engine.migrate(created)  # applying twice is a no-op
    try:
        yield created
    finally:
        await created.dispose()


async def new_chat(engine: Engine) -> str:
    account = await db_accounts.create_account(engine, "a")
    chat = await db.create_chat(engine, account, "t", "demo:default", "sys")
    return str(chat["id"])


async def test_an_exchange_commits_both_messages_and_appends_to_the_default_leaf(
    engine: Engine,
) -> None:
    chat_id = await new_chat(engine)
    user, reply, _ = await db.create_exchange(engine, chat_id, db.MISSING, "one", "demo:default")
    assert (user["parent_id"], reply["parent_id"]) == (None, user["id"])
    second_user, _, _ = await db.create_exchange(engine, chat_id, db.MISSING, "two", "demo:default")
    assert second_user["parent_id"] == reply["id"]
    root, _, _ = await db.create_exchange(engine, chat_id, None, "new root", "demo:default")
    assert root["parent_id"] is None
    leaf_user, _, _ = await db.create_exchange(engine, chat_id, db.MISSING, "x", "demo:default")
    assert leaf_user["parent_id"] is not None  # follows the newest root's branch
    path = await db.path(engine, leaf_user["id"])
    assert [m["content"] for m in path] == ["new root", "", "x"]


async def test_a_user_message_cannot_follow_a_user_message_or_another_chat(engine: Engine) -> None:
    chat_id = await new_chat(engine)
    other = await new_chat(engine)
    user, _, _ = await db.create_exchange(engine, chat_id, db.MISSING, "one", "demo:default")
    _, foreign, _ = await db.create_exchange(engine, other, db.MISSING, "hi", "demo:default")
    for parent in (user["id"], foreign["id"], "msg_missing"):
        with pytest.raises(db.ParentError):
            await db.create_exchange(engine, chat_id, parent, "no", "demo:default")
    state = await db.chat_state(engine, chat_id)
    assert state is not None and len(state.messages) == 2  # nothing was written


async def test_writes_to_a_reply_need_its_lease_and_stop_once_it_ended(engine: Engine) -> None:
    chat_id = await new_chat(engine)
    _, reply, _ = await db.create_exchange(engine, chat_id, db.MISSING, "q", "demo:default")
    rid = reply["id"]
    assert await db_replies.start_reply(engine, rid, "e.1-0", "lease-a")
    assert not await db_replies.start_reply(engine, rid, "e.1-0", "lease-b")  # delivered twice: no
    stolen = db_replies.Flush(rid, "lease-b", "x", "", None, 1, "e.2-0")
    assert await db_replies.write_replies(engine, [stolen], []) == set()
    owned = db_replies.Flush(rid, "lease-a", "ab", "t", None, 2, "e.3-0")
    assert await db_replies.write_replies(engine, [owned], []) == {rid}
    state = await db.chat_state(engine, chat_id)
    assert state is not None and state.positions == ["e.3-0"]
    streaming = next(m for m in state.messages if m["id"] == rid)
    assert (streaming["status"], streaming["content"], streaming["seq"]) == ("streaming", "ab", 2)
    final = await db_replies.finish_reply(
        engine,
        rid,
        "lease-a",
        "complete",
        content="abc",
        thinking="t",
        seq=3,
        input_tokens=4,
        output_tokens=3,
    )
    assert final is not None and final["usage"] == {
        "input_tokens": 4,
        "output_tokens": 3,
        "reasoning_tokens": 0,
    }
    assert await db_replies.finish_reply(engine, rid, None, "cancelled") is None  # already ended
    late = db_replies.Flush(rid, "lease-a", "zzz", "", None, 9, "e.9-0")
    assert await db_replies.write_replies(engine, [late], [(rid, "lease-a")]) == set()
    message, position = await db.get_message(engine, rid)
    assert (message["content"], message["status"], position) == ("abc", "complete", None)


async def test_one_batched_write_stores_each_owned_reply_and_only_those(engine: Engine) -> None:
    chat_id = await new_chat(engine)
    replies = []
    for i in range(3):
        _, reply, _ = await db.create_exchange(engine, chat_id, db.MISSING, f"q{i}", "demo:default")
        assert await db_replies.start_reply(engine, reply["id"], "e.1-0", f"lease-{i}")
        replies.append(reply["id"])
    flushes = [
        db_replies.Flush(replies[0], "lease-0", "zero", "", None, 1, "e.5-0"),
        # not its lease: refused
        db_replies.Flush(replies[1], "stolen", "one", "", None, 1, "e.6-0"),
    ]
    owned = await db_replies.write_replies(engine, flushes, [(replies[2], "lease-2")])
    assert owned == {replies[0], replies[2]}
    state = await db.chat_state(engine, chat_id)
    assert state is not None
    rows = {m["id"]: m for m in state.messages}
    assert (rows[replies[0]]["content"], rows[replies[0]]["seq"]) == ("zero", 1)
    assert rows[replies[0]]["status"] == "streaming"
    assert (rows[replies[1]]["content"], rows[replies[1]]["seq"]) == ("", 0)
    assert rows[replies[2]]["status"] == "pending"  # a heartbeat changes nothing it shows
    assert sorted(state.positions) == ["e.1-0", "e.1-0", "e.5-0"]


async def test_leased_replies_carry_a_stamp_that_each_write_of_their_run_moves(
    engine: Engine,
) -> None:
    chat_id = await new_chat(engine)
    _, reply, _ = await db.create_exchange(engine, chat_id, db.MISSING, "q", "demo:default")
    assert await db_replies.leased_replies(engine) == []  # pending, not taken: no run to watch
    assert await db_replies.start_reply(engine, reply["id"], "e.1-0", "lease")
    [(found, lease, stamp)] = await db_replies.leased_replies(engine)
    assert (found, lease) == (reply["id"], "lease")
    assert await db_replies.write_replies(engine, [], [(reply["id"], "lease")]) == {reply["id"]}
    [(_, _, beaten)] = await db_replies.leased_replies(engine)
    assert beaten != stamp
    assert await db_replies.unfinished_positions(engine) == {chat_id: ["e.1-0"]}


async def test_deleting_a_message_takes_its_descendants(engine: Engine) -> None:
    chat_id = await new_chat(engine)
    first, _, _ = await db.create_exchange(engine, chat_id, db.MISSING, "a", "demo:default")
    await db.create_exchange(engine, chat_id, db.MISSING, "b", "demo:default")
    doomed = await db.subtree(engine, first["id"])
    assert len(doomed) == 4 and doomed[0] == first["id"]
    await db.delete_messages(engine, doomed)
    state = await db.chat_state(engine, chat_id)
    assert state is not None and state.messages == []


async def test_generations_are_listed_newest_first_per_account(engine: Engine) -> None:
    chat_id = await new_chat(engine)
    chat = await db.get_chat(engine, chat_id)
    assert chat is not None
    ids = []
    for _ in range(3):
        _, reply, _ = await db.create_exchange(engine, chat_id, db.MISSING, "q", "demo:default")
        record = records.new_generation(
            reply["id"], chat_id, chat["account_id"], "demo", "demo:default"
        )
        assert await db_replies.start_reply(engine, reply["id"], "e.1-0", "lease", record)
        gid = str(record["id"])
        await records.finish_generation(
            engine,
            gid,
            status="complete",
            first_token_at=datetime.now(UTC),
            usage={"input_tokens": 1, "output_tokens": 2},
            cost=0.0,
            deltas=2,
            flushes=1,
            error=None,
        )
        ids.append(gid)
    page = await records.list_generations(engine, [chat["account_id"]], limit=2)
    assert [g["id"] for g in page] == ids[::-1][:2]
    rest = await records.list_generations(engine, [chat["account_id"]], before=page[-1]["id"])
    assert [g["id"] for g in rest] == [ids[0]]
    assert await records.list_generations(engine, ["acc_other"]) == []


async def test_passwords_and_tokens_are_stored_hashed(engine: Engine) -> None:
    user_id = await db_accounts.create_user(engine, "Ann@Example.com", "Ann", "s3cret-pass")
    found = await db_accounts.password_of(engine, "ann@example.com")
    assert found is not None and found[0] == user_id and found[1] is not None
    assert found[1].startswith("$argon2id$") and passwords.verify("s3cret-pass", found[1])
    assert not passwords.verify("wrong", found[1])
    token, _ = await db_accounts.issue_token(engine, user_id)
    assert (await db_accounts.caller_for_token(engine, token, "api")) is not None
    assert await db_accounts.caller_for_token(engine, token, "session") is None
    async with engine.connect() as conn:
        import sqlalchemy as sa

        stored = " ".join(
            str(v)
            for row in await conn.execute(
                sa.text(
                    "SELECT u.password_hash, t.hash FROM users u JOIN tokens t ON t.user_id = u.id"
                )
            )
            for v in row
        )
    assert "s3cret-pass" not in stored and token not in stored


async def test_a_process_opens_at_most_its_pool_of_postgresql_connections(pg_url: str) -> None:
    # Every process of a scaled-out set opens its own pool: a burst of requests must wait
    # for a connection, never open more (PostgreSQL refuses clients past max_connections).
    import asyncpg

    engine = db_engine.create(pg_url, pool=3)
    name = pg_url.rsplit("/", 1)[1]
    inside, full, release = [0], asyncio.Event(), asyncio.Event()
    try:
        await db_engine.migrate(engine)

        async def hold() -> None:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
                inside[0] += 1
                if inside[0] == 3:
                    full.set()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(10)]
        await asyncio.wait_for(full.wait(), 10)
        probe = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            opened = await probe.fetchval(query, name)
        finally:
            await probe.close()
        assert (opened, inside[0]) == (3, 3)  # the other seven wait their turn
        release.set()
        await asyncio.wait_for(asyncio.gather(*holders), 10)
        assert inside[0] == 10
    finally:
        await engine.dispose()


async def test_exchanges_asked_together_are_one_transaction_and_answer_one_by_one(
    engine: Engine,
) -> None:
    chat_id, other = await new_chat(engine), await new_chat(engine)
    first, _, _ = await db.create_exchange(engine, chat_id, db.MISSING, "one", "demo:default")
    commits: list[int] = []
    sa.event.listen(engine.sync_engine, "commit", lambda conn: commits.append(1))
    made = await db.create_exchanges(
        engine,
        [
            db.Ask(chat_id, db.MISSING, "two", "demo:default"),
            db.Ask(chat_id, first["id"], "a user message under a user message", "demo:default"),
            db.Ask(other, db.MISSING, "hi", "demo:default"),
            db.Ask(chat_id, db.MISSING, "three", "demo:default"),
        ],
    )
    assert len(commits) == 1
    two, refused, hi, three = made
    assert isinstance(refused, db.ParentError)
    assert not isinstance(two, Exception) and not isinstance(three, Exception)
    assert not isinstance(hi, Exception) and hi.user["parent_id"] is None
    # asks in one chat follow each other: "three" answers "two"'s reply
    assert three.user["parent_id"] == two.reply["id"]
    stored = [m["content"] for m in await db.path(engine, three.reply["id"]) if m["role"] == "user"]
    assert stored == ["one", "two", "three"]  # the refused ask wrote nothing


async def test_runs_started_together_take_their_replies_in_one_transaction(
    engine: Engine,
) -> None:
    chat_id = await new_chat(engine)
    chat = await db.get_chat(engine, chat_id)
    assert chat is not None
    _, first, _ = await db.create_exchange(engine, chat_id, db.MISSING, "one", "demo:default")
    _, second, _ = await db.create_exchange(engine, chat_id, None, "two", "demo:default")
    assert await db_replies.start_reply(engine, second["id"], "e.1-0", "earlier")  # another run's
    made = [
        records.new_generation(reply["id"], chat_id, chat["account_id"], "demo", "demo:default")
        for reply in (first, second)
    ]
    commits: list[int] = []
    sa.event.listen(engine.sync_engine, "commit", lambda conn: commits.append(1))
    taken = await db_replies.start_replies(
        engine,
        [
            db_replies.Start(first["id"], "e.1-1", "lease-a", made[0]),
            db_replies.Start(second["id"], "e.1-1", "lease-b", made[1]),
        ],
    )
    assert taken == [True, False] and len(commits) == 1
    # lease-a's now
    assert not await db_replies.start_reply(engine, first["id"], "e.1-1", "lease-c")
    # the record of the run that took its reply, and only that one
    listed = await records.list_generations(engine, [chat["account_id"]])
    assert [g["id"] for g in listed] == [made[0]["id"]]

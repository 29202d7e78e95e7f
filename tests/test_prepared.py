"""Plans (`db.prepared`): a marked statement run on SQLite's driver answers what SQLAlchemy
answers for it (rows, types, row counts, errors), and what a plan cannot run exactly goes on
through SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gapless.db import accounts as db_accounts
from gapless.db import chats as db_chats
from gapless.db import engine as db_engine
from gapless.db import replies as db_replies
from gapless.db.generations import INSERT as INSERT_GENERATION
from gapless.db.generations import new_generation
from gapless.db.inline import InlineEngine
from gapless.db.prepared import marked, prepared
from gapless.db.tables import chats, generations, messages


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    found = db_engine.create(f"sqlite:///{tmp_path / 'plans.db'}")
    await db_engine.migrate(found)
    assert isinstance(found, InlineEngine)
    yield found
    await found.dispose()


async def _both(engine: InlineEngine, statement: Any, parameters: Any) -> tuple[Any, Any]:
    """The statement's rows through its plan and through SQLAlchemy, in one snapshot."""
    async with engine.connect() as conn:
        planned = await conn.execute(statement, parameters)
        plain = conn._connection.execute(statement, parameters)  # SQLAlchemy's own way
        return [tuple(r) for r in planned], [tuple(r) for r in plain]


async def _chat(engine: InlineEngine) -> tuple[dict[str, Any], db_chats.Exchange]:
    account = await db_accounts.create_account(engine, "team")
    chat = await db_chats.create_chat(engine, account, "t", "demo:echo", "be brief")
    made = await db_chats.create_exchange(engine, chat["id"], db_chats.MISSING, "hi", "demo:echo")
    return chat, made


async def test_reads_answer_the_rows_sqlalchemy_answers_with_their_types(
    engine: InlineEngine,
) -> None:
    chat, made = await _chat(engine)
    for statement, parameters in (
        (db_chats._CHAT, {"b_chat": chat["id"]}),
        (db_chats._MESSAGES, {"b_chat": chat["id"]}),
        (db_chats._TREE, {"b_chat": chat["id"]}),
        (db_chats._PATH, {"b_message": made.reply["id"]}),
        (db_chats.MESSAGE, {"b_message": "msg_missing"}),
    ):
        assert marked(statement)
        planned, plain = await _both(engine, statement, parameters)
        assert planned == plain
    async with engine.connect() as conn:
        row = (await conn.execute(db_chats._CHAT, {"b_chat": chat["id"]})).one()
    assert isinstance(row.updated_at, datetime)  # a stamp comes back a datetime, as SQLAlchemy's


async def test_rows_have_their_columns_names(engine: InlineEngine) -> None:
    chat, made = await _chat(engine)
    async with engine.connect() as conn:
        rows = list(await conn.execute(db_chats._TREE, {"b_chat": chat["id"]}))
    assert {(r.id, r.role) for r in rows} == {
        (made.user["id"], "user"),
        (made.reply["id"], "assistant"),
    }


async def test_writes_store_what_sqlalchemy_would_and_count_their_rows(
    engine: InlineEngine,
) -> None:
    chat, made = await _chat(engine)
    stamp = datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC)
    async with engine.begin() as conn:
        touched = (
            await conn.execute(db_chats._TOUCHED, {"b_chat": chat["id"], "b_stamp": stamp})
        ).one()
        start = {"b_message": made.reply["id"], "b_prompt": None, "b_stamp": stamp}
        started = await conn.execute(
            db_replies._START, {**start, "b_lease": "lease-1", "b_position": "7-0"}
        )
        again = await conn.execute(
            db_replies._START, {**start, "b_lease": "lease-2", "b_position": "8-0"}
        )
    assert touched.updated_at == stamp.replace(tzinfo=None)  # SQLite keeps no zone
    assert (started.rowcount, again.rowcount) == (1, 0)  # the second run finds it leased
    async with engine.connect() as conn:  # read back by SQLAlchemy alone
        row = conn._connection.execute(
            sa.select(messages).where(messages.c.id == made.reply["id"])
        ).one()
        chat_row = conn._connection.execute(sa.select(chats).where(chats.c.id == chat["id"])).one()
    assert (row.lease, row.position, row.updated_at) == (
        "lease-1",
        "7-0",
        stamp.replace(tzinfo=None),
    )
    assert chat_row.updated_at == stamp.replace(tzinfo=None)


async def test_an_executemany_writes_every_row(engine: InlineEngine) -> None:
    chat, made = await _chat(engine)
    records = [
        new_generation(made.reply["id"], chat["id"], "acct_1", "demo", "echo", step=n)
        for n in (1, 2)
    ]
    async with engine.begin() as conn:
        await conn.execute(INSERT_GENERATION, records)
    async with engine.connect() as conn:
        stored = conn._connection.execute(
            sa.select(generations.c.id, generations.c.step, generations.c.started_at).order_by(
                generations.c.step
            )
        ).all()
    assert [(r.id, r.step) for r in stored] == [(records[0]["id"], 1), (records[1]["id"], 2)]
    assert stored[0].started_at == records[0]["started_at"].replace(tzinfo=None)


async def test_a_refused_write_raises_sqlalchemys_error_and_writes_nothing(
    engine: InlineEngine,
) -> None:
    chat, made = await _chat(engine)
    twice = db_chats.message_values(chat["id"], None, "user", id=made.user["id"])
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                db_chats._INSERT, [db_chats.message_values(chat["id"], None, "user"), twice]
            )
    state = await db_chats.chat_state(engine, chat["id"])
    assert state is not None and len(state.messages) == 2  # the exchange only


async def test_a_write_outside_a_transaction_block_ends_with_the_block(
    engine: InlineEngine,
) -> None:
    chat, _ = await _chat(engine)
    async with engine.connect() as conn:  # as SQLAlchemy's connect(): not committed
        await conn.execute(db_chats._INSERT, db_chats.message_values(chat["id"], None, "user"))
    state = await db_chats.chat_state(engine, chat["id"])
    assert state is not None and len(state.messages) == 2


async def test_what_a_plan_cannot_run_goes_through_sqlalchemy(engine: InlineEngine) -> None:
    chat, made = await _chat(engine)
    listed = prepared(  # an IN list is expanded at execution time: SQLAlchemy's to do
        sa.select(messages.c.id).where(messages.c.role.in_(("user", "assistant")))
    )
    defaulted = prepared(generations.insert())  # `deltas` left out: a Python-side default
    record = new_generation(made.reply["id"], chat["id"], "acct_1", "demo", "echo")
    del record["deltas"]
    async with engine.begin() as conn:
        found = {row.id for row in await conn.execute(listed)}
        await conn.execute(defaulted, record)
    assert engine.plan(listed, None) is None and engine.plan(defaulted, record) is None
    assert found == {made.user["id"], made.reply["id"]}
    async with engine.connect() as conn:
        deltas = conn._connection.scalar(
            sa.select(generations.c.deltas).where(generations.c.id == record["id"])
        )
    assert deltas == 0


async def test_a_plan_is_compiled_once_per_set_of_keys(engine: InlineEngine) -> None:
    chat, _ = await _chat(engine)
    first = engine.plan(db_chats._CHAT, {"b_chat": chat["id"]})
    assert first is not None and engine.plan(db_chats._CHAT, {"b_chat": "other"}) is first
    stamp = datetime.now(UTC) - timedelta(seconds=1)
    fewer = engine.plan(db_replies._FINISH_ANY, {"status": "failed", "b_message": "m"})
    more = engine.plan(
        db_replies._FINISH_ANY, {"status": "failed", "updated_at": stamp, "b_message": "m"}
    )
    assert fewer is not None and more is not None and fewer is not more
    assert "updated_at" in more.sql and "updated_at" not in fewer.sql


async def test_a_missing_value_is_refused_as_sqlalchemy_refuses_it(engine: InlineEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(sa.exc.SQLAlchemyError, match="b_chat"):
            await conn.execute(db_chats._CHAT, {})
        with pytest.raises(sa.exc.SQLAlchemyError, match="b_chat"):
            conn._connection.execute(db_chats._CHAT, {})


async def test_columns_a_named_tuple_cannot_name_go_through_sqlalchemy(
    engine: InlineEngine,
) -> None:
    chat, _ = await _chat(engine)
    keyword = prepared(sa.select(chats.c.id.label("from")).where(chats.c.id == chat["id"]))
    twice = prepared(sa.select(chats.c.id, messages.c.id).where(chats.c.id == chat["id"]))
    assert engine.plan(keyword, None) is None and engine.plan(twice, None) is None
    async with engine.connect() as conn:
        row = (await conn.execute(keyword)).one()
    assert row._mapping["from"] == chat["id"]

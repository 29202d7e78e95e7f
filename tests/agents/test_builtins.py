"""The built-in tools: calculator (safe arithmetic), current_time (zones), search_chats (the
caller's own chats, through `db.search` on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from gapless.agents.builtins import builtins
from gapless.agents.tools import ToolContext, ToolError
from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db import chats as db_chats
from gapless.db.search import search_messages, searcher, snippet
from gapless.db.tables import messages

TOOLS = builtins()
CONTEXT = ToolContext(user_id="u", account_ids=None, chat_id="c", message_id="m")


async def calculate(expression: str) -> object:
    answer = await TOOLS["calculator"].call({"expression": expression}, CONTEXT)
    assert isinstance(answer, dict)
    return answer["result"]


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("1 + 2 * 3", 7),
        ("(2 + 3) * 4 / 8", 2.5),
        ("2 ** 100", 2**100),
        ("7 // 2 + 7 % 2", 4),
        ("-3 ** 2", -9),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(pi, 2)", 3.14),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("2 ** -1", 0.5),
    ],
)
async def test_the_calculator_evaluates_arithmetic(expression: str, result: object) -> None:
    assert await calculate(expression) == result


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        ("1 / 0", "division_by_zero"),
        ("5 % 0", "division_by_zero"),
        ("9 ** 9 ** 9", "too_large"),
        ("10 ** 5000", "too_large"),
        ("exp(10000)", "too_large"),
        ("round(5, -10 ** 9)", "invalid_expression"),
        ("'ab' * 1000000000", "invalid_expression"),
        ("__import__('os').system('true')", "invalid_expression"),
        ("().__class__.__bases__", "invalid_expression"),
        ("open('/etc/passwd')", "invalid_expression"),
        ("x + 1", "invalid_expression"),
        ("(1 + ", "invalid_expression"),
        ("lambda: 1", "invalid_expression"),
        ("sqrt(-1)", "invalid_expression"),
        ("1 < 2", "invalid_expression"),
    ],
)
async def test_the_calculator_refuses_what_is_not_safe_arithmetic(
    expression: str, code: str
) -> None:
    with pytest.raises(ToolError) as raised:
        await calculate(expression)
    assert raised.value.code == code
    assert raised.value.message


async def test_current_time_answers_the_moment_in_the_asked_zone() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = await TOOLS["current_time"].call({"zone": "Asia/Kolkata"}, CONTEXT)
    after = datetime.now(UTC)
    assert isinstance(answer, dict)
    moment = datetime.fromisoformat(answer["iso"])
    assert before <= moment <= after
    assert moment.utcoffset() == datetime.now(ZoneInfo("Asia/Kolkata")).utcoffset()
    assert answer["utc_offset"] == "+0530"
    assert answer["weekday"] == moment.strftime("%A")


async def test_current_time_defaults_to_utc_and_refuses_an_unknown_zone() -> None:
    answer = await TOOLS["current_time"].call({}, CONTEXT)
    assert isinstance(answer, dict) and answer["zone"] == "UTC"
    assert answer["utc_offset"] == "+0000"
    for zone in ("Mars/Olympus", "../../etc/passwd", "", "Europe/"):
        with pytest.raises(ToolError) as raised:
            await TOOLS["current_time"].call({"zone": zone}, CONTEXT)
        assert raised.value.code == "unknown_zone"


async def chat_with(engine: Engine, account: str, title: str, *texts: str) -> list[str]:
    chat = await db_chats.create_chat(engine, account, title, "demo:default", "")
    ids = []
    for text in texts:
        user, reply, _ = await db_chats.create_exchange(
            engine, chat["id"], db_chats.MISSING, text, "demo:default"
        )
        ids.append(user["id"])
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(messages).where(messages.c.id == reply["id"]).values(
                    content=f"answer to {text}", status="complete"
                )
            )
    return ids


async def test_search_finds_messages_in_any_case_newest_first_with_their_chat(
    engine: Engine,
) -> None:
    account = await db_accounts.create_account(engine, "a")
    first = await chat_with(engine, account, "Trip", "Book a TRAIN to Lyon")
    second = await chat_with(engine, account, "Chores", "nothing here", "the train was late")
    found = await search_messages(engine, "Train", [account])
    # A reply shares its question's time and sorts after it: the reply comes first.
    assert [f["role"] for f in found] == ["assistant", "user", "assistant", "user"]
    assert [f["message_id"] for f in found][1::2] == [second[1], first[0]]
    assert found[1]["chat_title"] == "Chores" and found[1]["snippet"] == "the train was late"
    assert found[3]["chat_id"] != found[1]["chat_id"]
    assert await search_messages(engine, "train", [account], limit=1) == found[:1]
    assert await search_messages(engine, "plane", [account]) == []


async def test_search_leaves_out_replies_still_being_written(engine: Engine) -> None:
    account = await db_accounts.create_account(engine, "a")
    chat = await db_chats.create_chat(engine, account, "T", "demo:default", "")
    user, reply, _ = await db_chats.create_exchange(
        engine, chat["id"], db_chats.MISSING, "look for the lighthouse", "demo:default"
    )
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(messages).where(messages.c.id == reply["id"]).values(
                content="Searching for the lighthouse", status="streaming"
            )
        )
    found = await search_messages(engine, "lighthouse", [account])
    assert [f["message_id"] for f in found] == [user["id"]]


async def test_search_sees_only_the_callers_accounts_and_every_chat_for_an_admin(
    engine: Engine,
) -> None:
    mine = await db_accounts.create_account(engine, "mine")
    theirs = await db_accounts.create_account(engine, "theirs")
    await chat_with(engine, mine, "Mine", "secret plan")
    await chat_with(engine, theirs, "Theirs", "secret recipe")
    titles = {f["chat_title"] for f in await search_messages(engine, "secret", [mine])}
    assert titles == {"Mine"}
    assert await search_messages(engine, "secret", []) == []
    everything = await search_messages(engine, "secret", None)
    assert {f["chat_title"] for f in everything} == {"Mine", "Theirs"}


async def test_search_matches_wildcards_and_the_escape_character_literally(engine: Engine) -> None:
    account = await db_accounts.create_account(engine, "a")
    await chat_with(engine, account, "T", "100% sure", "100 percent", "a_b", "axb", "c\\d")
    assert [f["snippet"] for f in await search_messages(engine, "100%", [account])] == [
        "answer to 100% sure",
        "100% sure",
    ]
    assert {f["snippet"] for f in await search_messages(engine, "a_b", [account])} == {
        "a_b", "answer to a_b"
    }
    assert {f["snippet"] for f in await search_messages(engine, "c\\d", [account])} == {
        "c\\d", "answer to c\\d"
    }
    assert await search_messages(engine, "%", [account]) != []  # "100% sure" only
    assert all("%" in f["snippet"] for f in await search_messages(engine, "%", [account]))


async def test_search_chats_searches_through_the_context_it_is_given(engine: Engine) -> None:
    mine = await db_accounts.create_account(engine, "mine")
    theirs = await db_accounts.create_account(engine, "theirs")
    await chat_with(engine, mine, "Mine", "where is the key")
    await chat_with(engine, theirs, "Theirs", "the key is under the mat")
    context = ToolContext(
        user_id="u",
        account_ids=frozenset([mine]),
        chat_id="c",
        message_id="m",
        search=searcher(engine, [mine]),
    )
    found = await TOOLS["search_chats"].call({"query": "KEY", "limit": 5}, context)
    assert isinstance(found, list)
    assert {f["chat_title"] for f in found} == {"Mine"} and len(found) == 2


async def test_search_chats_without_a_search_is_a_clear_error() -> None:
    with pytest.raises(ToolError) as raised:
        await TOOLS["search_chats"].call({"query": "x"}, CONTEXT)
    assert raised.value.code == "unavailable"


def test_a_snippet_centres_the_match_and_marks_what_it_cut() -> None:
    text = "a" * 300 + " needle " + "b" * 300
    cut = snippet(text, "NEEDLE", width=40)
    assert "needle" in cut and cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 42
    assert snippet("short needle", "needle") == "short needle"
    assert snippet("multi\n  line   text", "line") == "multi line text"

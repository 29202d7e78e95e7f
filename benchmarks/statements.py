"""What one statement costs through SQLAlchemy Core, through its plan, and on the driver.

Job: size the per-statement overhead on the start path (issue 15). A chat is
read by id 500 times each way, timed by the thread's CPU: the statement of
`db.chats.get_chat` executed by SQLAlchemy Core on the loop's SQLite connection
(`db/inline.py`) and as its plan on the driver (`db/prepared.py`), both inside
one block; the same `SELECT` on the driver's own connection; and `get_chat`
itself (a block per read, the plan, the row turned into JSON). Two rounds: the
first warms caches.

    .venv/bin/python -m benchmarks.statements

Imports `gapless` (the storage it times).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time


async def measure(reads: int = 500, rounds: int = 2) -> list[dict[str, float]]:
    os.environ["GAPLESS_DATA_DIR"] = tempfile.mkdtemp(prefix="gapless-statements-")
    from gapless.config import Settings
    from gapless.db import chats as db_chats
    from gapless.runtime import build
    from gapless.web.deps import accounts_of

    runtime = build(Settings())
    created = await runtime.start()
    assert created is not None
    figures = []
    try:
        caller = await accounts_of(runtime).by_bearer(created.token)
        ids = [(await runtime.chats.create(caller, {}))["id"] for _ in range(reads)]
        driver = runtime.engine.sync_engine.raw_connection()  # SQLite: the one connection
        for _ in range(rounds):
            row: dict[str, float] = {}
            async with runtime.engine.connect() as conn:  # one block: the statement alone
                started = time.thread_time()
                for chat_id in ids:
                    conn._connection.execute(db_chats._CHAT, {"b_chat": chat_id}).first()  # type: ignore[union-attr]
                row["core"] = time.thread_time() - started
                started = time.thread_time()
                for chat_id in ids:
                    (await conn.execute(db_chats._CHAT, {"b_chat": chat_id})).first()
                row["plan"] = time.thread_time() - started
            started = time.thread_time()
            for chat_id in ids:
                driver.cursor().execute("SELECT * FROM chats WHERE id = ?", (chat_id,)).fetchone()
            row["driver"] = time.thread_time() - started
            started = time.thread_time()
            for chat_id in ids:
                await db_chats.get_chat(runtime.engine, chat_id)
            row["get_chat"] = time.thread_time() - started
            figures.append({name: seconds * 1000 / reads for name, seconds in row.items()})
    finally:
        await runtime.close()
    return figures


def main() -> None:
    for ms in asyncio.run(measure()):
        print(
            f"a chat read by id: {ms['core']:.3f} ms through SQLAlchemy Core, {ms['plan']:.3f}"
            f" ms as its plan, {ms['driver']:.3f} ms on the driver; {ms['get_chat']:.3f} ms by"
            " get_chat (its block, its plan, its JSON)"
        )


if __name__ == "__main__":
    main()

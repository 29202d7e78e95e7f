"""The scaled-out processes as an operator runs them: several API processes on one port,
workers that shut down gracefully, and configurations that cannot scale refused clearly."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.scale.cluster import GAPLESS, Cluster, until
from tests.scale.test_faults import Watchers, check_clients, check_model_output, send, start_chat


def test_several_api_processes_need_the_shared_log_and_queue(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAPLESS_")}
    env["GAPLESS_DATA_DIR"] = str(tmp_path)
    env["GAPLESS_CONFIG"] = str(tmp_path / "none.toml")
    done = subprocess.run(
        [GAPLESS, "serve", "--workers", "2"], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "GAPLESS_EVENTS_URL=redis://" in done.stderr


async def test_api_processes_sharing_one_port_keep_the_guarantee(cluster: Cluster) -> None:
    url = await cluster.api(workers=2)  # uvicorn's processes share the port's connections
    await cluster.worker()
    async with cluster.client(url) as http:
        chat_id = await start_chat(http)
        # Every reconnect is a new connection, which either process may accept.
        watchers = Watchers(cluster, url, url, chat_id, drop=4)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await watchers.done()
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_a_worker_asked_to_stop_lets_its_run_finish(any_queue_cluster: Cluster) -> None:
    cluster = any_queue_cluster
    url = await cluster.api()
    worker = await cluster.worker()
    async with cluster.client(url) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, url, url, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await until(lambda: cluster.message(reply_id), lambda m: m["seq"] >= 5, 30)
    worker.popen.terminate()  # SIGTERM: no new job, the run in flight may finish (grace 10 s)
    await watchers.done()
    assert worker.popen.wait(30) == 0
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_a_worker_whose_grace_runs_out_ends_its_run_interrupted_at_once(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    cluster.settings["GAPLESS_LEASE_TTL"] = "30"  # so only the worker can end it this fast
    url = await cluster.api()
    worker = await cluster.worker(4, "--grace", "0.5")
    async with cluster.client(url) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, url, url, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    watchers.follow(reply_id)
    await until(lambda: cluster.message(reply_id), lambda m: m["seq"] >= 5, 30)
    asked = time.monotonic()
    worker.popen.terminate()
    await watchers.done()
    assert time.monotonic() - asked < 5.0  # the worker ended it, not the lease reaper
    assert worker.popen.wait(30) == 0
    stored = await cluster.message(reply_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "interrupted"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)

"""Jobs lost before their run took the reply's lease are delivered again, so a reply never
stays `pending` forever: a worker that died just after dequeuing, a queue Redis lost."""

from __future__ import annotations

from redis.asyncio import Redis

from gapless.jobs.saq import queue_from_url
from tests.scale.cluster import Cluster, until
from tests.scale.test_faults import Watchers, check_clients, check_model_output, send, start_chat

SWEPT = 45.0  # SAQ's job heartbeat (15 s), its sweep, and the machine's load


async def test_a_job_whose_worker_died_right_after_dequeuing_it_runs_again(
    any_queue_cluster: Cluster,
) -> None:
    cluster = any_queue_cluster
    url = await cluster.api()
    async with cluster.client(url) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, url, url, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    queue = queue_from_url(cluster.queue)
    await queue.connect()
    try:  # a "worker" takes the job and dies before running it
        job = await queue.dequeue(timeout=10)
        assert job is not None and job.key == reply_id
        await job.update(status="active")
    finally:
        await queue.disconnect()
    await cluster.worker()
    watchers.follow(reply_id)
    await watchers.done(SWEPT)
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)


async def test_a_reply_whose_queued_job_redis_lost_is_submitted_again(cluster: Cluster) -> None:
    url = await cluster.api()
    async with cluster.client(url) as http:
        chat_id = await start_chat(http)
        watchers = Watchers(cluster, url, url, chat_id)
        await watchers.load()
        reply_id = await send(http, chat_id)
    redis = Redis.from_url(cluster.redis_url)
    try:
        await until(lambda: redis.llen("saq:gapless:queued"), lambda n: n == 1, 10)
        await redis.flushdb()  # the queued job is gone with everything else
    finally:
        await redis.aclose()
    await cluster.worker()
    watchers.follow(reply_id)
    await watchers.done(SWEPT)
    stored = await cluster.message(reply_id)
    assert stored["status"] == "complete"
    check_model_output(stored)
    check_clients(watchers.tabs, reply_id, stored)

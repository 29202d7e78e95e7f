"""Prometheus `/metrics`: the delivery figures read at scrape time (off unless a token is set).

A collector over `observe.delivery.Tally`, so a scrape costs one pass over a
handful of counters and nothing between scrapes. Imports `observe.delivery`.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gapless.observe.delivery import Tally

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DeliveryCollector(Collector):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def collect(self) -> Iterator[Metric]:
        t = self.tally
        live = GaugeMetricFamily(
            "gapless_delivery_subscribers", "Live subscriptions by transport", labels=["transport"]
        )
        for transport, count in sorted(t.subscribers.items()):
            live.add_metric([transport], count)
        yield live
        for name, value, text in (
            ("events_appended", t.appended, "Events appended to the log by this process"),
            ("events_delivered", t.delivered, "Events handed to subscribers"),
            ("replays", t.replays, "Resumed subscriptions that replayed events"),
            ("replayed_events", t.replayed, "Events carried by replays"),
            ("slow_subscribers_ended", t.slow_ended, "Subscribers reset for falling behind"),
            ("reconnects", t.reconnects, "Subscriptions opened with a cursor"),
        ):
            yield CounterMetricFamily(f"gapless_delivery_{name}", text, value=value)
        resets = CounterMetricFamily(
            "gapless_delivery_resets", "Subscriptions ended by a reset", labels=["reason"]
        )
        for reason, count in sorted(t.resets.items()):
            resets.add_metric([reason], count)
        yield resets
        for name, ring, scale, text in (
            ("lag_events", t.lag_events, 1.0, "Events a subscriber was behind the head"),
            ("lag_seconds", t.lag_ms, 1000.0, "How long ago a delivered event was appended"),
        ):
            gauge = GaugeMetricFamily(f"gapless_delivery_{name}", text, labels=["quantile"])
            for quantile, reading in t.percentiles(ring).items():
                if reading is not None:
                    gauge.add_metric([{"p50": "0.5", "p99": "0.99"}[quantile]], reading / scale)
            yield gauge


def render(tally: Tally) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(tally))
    return generate_latest(registry)

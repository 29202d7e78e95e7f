"""Benchmarks of Gapless against a bare fan-out ceiling; run `python -m benchmarks.fanout`."""

"""Event logs: one ordered, replayable stream per chat and per account.

`base` is the interface; `memory` the in-process engine; `redis` the scaled-out one.
"""

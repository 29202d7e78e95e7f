"""`Watch`: which runs stopped heart-beating, judged on this process's own clock. Pure.

A run proves it is alive by writing its reply's row now and then (a flush or a
touch: `writer.Flusher`); each write leaves a new stamp. Comparing that stamp
with this process's clock would trust two clocks (the writer's and ours) and
would take a database stall for a death: the stamps stop moving while nobody
can write. So a run is presumed dead only when *this* process saw the same
stamp for `ttl` seconds of its own monotonic clock, through looks at the
database no further apart than `gap`; a longer gap (the database, or this
process, stalled) starts the watch over. A watch that errs, errs late.
Imports nothing from gapless.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Beat = TypeVar("Beat", bound=Hashable)


@dataclass
class Watch(Generic[Beat]):
    ttl: float
    gap: float  # longest pause between two looks that still counts as watching
    _since: dict[Beat, float] = field(default_factory=dict)  # beat -> first seen
    _looked: float | None = None

    def look(self, now: float, beats: Iterable[Beat]) -> list[Beat]:
        """Record one look at the leased runs' beats (e.g. `(reply_id, lease, stamp)`), taken
        at `now`; answers those unchanged for `ttl` seconds of looks."""
        if self._looked is not None and now - self._looked > self.gap:
            self._since.clear()  # we were not looking: no beat's age is known
        self._looked = now
        since = {beat: self._since.get(beat, now) for beat in beats}
        self._since = since
        return [beat for beat, first in since.items() if now - first >= self.ttl]

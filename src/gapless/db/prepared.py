"""Statements the hot path runs often, compiled once and sent to SQLite's driver directly.

Why: a chat read by id costs 0.045 ms of CPU through SQLAlchemy Core's
execution and 0.009 as the same `SELECT` on the bare driver (`python -m
benchmarks.statements`): the rest is the execution context, parameter
processing, the result's metadata and its row objects, paid again for every
statement. A reply's start runs about ten of them; as a plan, that read costs
0.017. A statement marked with `prepared` is compiled once per set of
parameter keys, by SQLAlchemy, with SQLAlchemy's own type conversions (its
bind and result processors), and then each execution is a tuple of values on
the driver's cursor and named tuples back.

Only the SQLite engine (`db.inline`) runs plans: on PostgreSQL a marked
statement is an ordinary statement. A shape a plan cannot run exactly as
SQLAlchemy would (an IN list expanded at execution time, Python-side column
defaults to fill, a callable value, result columns a named tuple cannot name:
two of one name, a keyword) goes on through SQLAlchemy.
Driver errors come out as SQLAlchemy's (`IntegrityError`, `OperationalError`),
as callers expect. Imports nothing from gapless.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable

S = TypeVar("S", bound=Executable)
Processor = Callable[[Any], Any] | None
_NEEDED = object()  # a bound parameter without a value of its own
_MARKED: dict[int, Executable] = {}  # id -> statement (kept, so the id stays its own)


def prepared(statement: S) -> S:
    """Mark a statement built once (a module's constant) as one the hot path runs: the SQLite
    engine compiles it once and runs it on the driver. Answers the statement itself."""
    _MARKED[id(statement)] = statement
    return statement


def marked(statement: object) -> bool:
    return _MARKED.get(id(statement)) is statement


class Result:
    """The part of SQLAlchemy's `CursorResult` that `db/` uses, over rows already fetched.
    Rows are named tuples: attributes, indexes and `_asdict()`, no `_mapping`."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if not self.rows:
            raise sa.exc.NoResultFound("No row was found when one was required")
        if len(self.rows) > 1:
            raise sa.exc.MultipleResultsFound("Multiple rows were found when one was required")
        return self.rows[0]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Plan:
    """One marked statement compiled for SQLite with one set of parameter keys."""

    def __init__(self, statement: Executable, keys: Sequence[str], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        self.sql = compiled.string
        self._compiled = compiled
        binds = compiled.binds
        # (the caller's key, the bound name, the value a literal carries, its conversion)
        self._binds: list[tuple[str, str, Any, Processor]] = [
            (
                binds[name].key,
                name,
                _NEEDED if binds[name].required else binds[name].value,
                _processor(binds[name].type, dialect, bind=True),
            )
            for name in compiled.positiontup or ()
        ]
        columns = list(getattr(statement, "exported_columns", ()))
        self._results: list[Processor] = [_processor(c.type, dialect) for c in columns]
        self._plain = not any(self._results)
        self._row = collections.namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]

    def _values(self, parameters: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The statement's values in order, as `construct_params` finds them: the caller's
        (by key, then by name), else the literal's own; converted by the type."""
        given = parameters or {}
        values = []
        for key, name, fixed, process in self._binds:
            if key in given:
                value = given[key]
            elif name in given:
                value = given[name]
            elif fixed is _NEEDED:
                raise sa.exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = fixed
            values.append(value if process is None else process(value))
        return tuple(values)

    def run(self, driver: sqlite3.Connection, parameters: Any) -> Result:
        try:
            if isinstance(parameters, list):
                cursor = driver.executemany(self.sql, [self._values(p) for p in parameters])
            else:
                cursor = driver.execute(self.sql, self._values(parameters))
            fetched = cursor.fetchall() if cursor.description else []
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(self.sql, parameters, exc, sqlite3.Error) from exc
        make = self._row._make  # type: ignore[attr-defined]
        if self._plain:
            rows = [make(raw) for raw in fetched]
        else:
            processors = self._results
            rows = [
                make([v if p is None else p(v) for p, v in zip(processors, raw, strict=True)])
                for raw in fetched
            ]
        return Result(rows, cursor.rowcount)


def plan(statement: Executable, keys: Sequence[str], dialect: Dialect) -> Plan | None:
    """The plan for this statement and these parameters' keys, or None where SQLAlchemy must
    run it (a shape a plan would run differently; see the module's docstring)."""
    try:
        found = Plan(statement, keys, dialect)
    except ValueError:  # result columns a named tuple cannot name (duplicates, keywords, _x)
        return None
    compiled = found._compiled
    if (
        "POSTCOMPILE" in found.sql
        or compiled.positiontup is None
        or any(bind.callable is not None for bind in compiled.binds.values())
        or getattr(compiled, "insert_prefetch", None)
        or getattr(compiled, "update_prefetch", None)
    ):
        return None
    return found


def keys_of(parameters: Any) -> tuple[str, ...]:
    """The parameters' keys, which a plan is compiled and cached for (an INSERT or an
    UPDATE's columns follow from them); an executemany's are its first row's."""
    if not parameters:
        return ()
    first = parameters[0] if isinstance(parameters, list) else parameters
    return tuple(first)


def _processor(type_: Any, dialect: Dialect, bind: bool = False) -> Processor:
    impl = type_.dialect_impl(dialect)
    found: Processor = (
        impl.bind_processor(dialect) if bind else impl.result_processor(dialect, None)
    )
    return found

"""Hot-path statements compiled once per SQL dialect instead of rebuilt by Peewee on every call.

A profile of CreateOrder showed a third of the server's CPU in Peewee composing the same few
statements. These helpers let Peewee compose each statement once (so quoting and placeholders
stay its own), with marker values in place of the data; each call then only binds values.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import peewee as pw

_Key = tuple[str, str, tuple[str, ...]]


class _Marker(str):
    """A placeholder value whose position in the composed parameter list names what goes there."""

    __slots__ = ()


class _Statement:
    """SQL composed with markers; `bind` turns named values into the parameter list."""

    def __init__(self, query: pw.Query, db: pw.Database) -> None:
        sql, params = db.get_sql_context().sql(query).query()
        self.sql = str(sql)
        self._params: list[Any] = list(params)

    def bind(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[p] if isinstance(p, _Marker) else p for p in self._params]


class _Compiled:
    def __init__(self, model: type[pw.Model]) -> None:
        self._model = model
        self._cache: dict[_Key, _Statement] = {}

    def _statement(self, names: tuple[str, ...]) -> tuple[pw.Database, _Statement]:
        db = self._model._meta.database.obj  # the database the proxy is bound to
        key = (type(db).__name__, db.param, names)
        statement = self._cache.get(key)
        if statement is None:
            statement = self._cache[key] = _Statement(self._compose(names), db)
        return db, statement

    def _compose(self, names: tuple[str, ...]) -> pw.Query:
        raise NotImplementedError

    def _field(self, name: str) -> pw.Field:
        field: pw.Field = self._model._meta.fields[name]
        return field


def _mark(name: str) -> pw.Value:
    # converter=False: the marker must reach the parameter list untouched by the field's db_value.
    return pw.Value(_Marker(name), converter=False)


class CompiledLookup(_Compiled):
    """SELECT every column of a model WHERE each given column equals a bound value."""

    def __init__(self, model: type[pw.Model], *columns: pw.Field) -> None:
        super().__init__(model)
        self._columns = columns
        self._names = tuple(c.name for c in columns)
        self._fields: Sequence[pw.Field] = model._meta.sorted_fields

    def one(self, *values: Any) -> dict[str, Any] | None:
        db, statement = self._statement(self._names)
        bound = {c.name: c.db_value(v) for c, v in zip(self._columns, values, strict=True)}
        row = db.execute_sql(statement.sql, statement.bind(bound)).fetchone()
        if row is None:
            return None
        return {field.name: field.python_value(value) for field, value in zip(self._fields, row, strict=True)}

    def _compose(self, names: tuple[str, ...]) -> pw.Query:
        condition = functools.reduce(operator.and_, [self._field(n) == _mark(n) for n in names])
        return self._model.select().where(condition)


class CompiledInsert(_Compiled):
    """INSERT one row into every column but the auto-increment key; missing values take defaults."""

    def __init__(self, model: type[pw.Model]) -> None:
        super().__init__(model)
        self._fields = [f for f in model._meta.sorted_fields if not isinstance(f, pw.AutoField)]

    def execute(self, values: Mapping[str, Any]) -> None:
        db, statement = self._statement(())
        bound = {f.name: f.db_value(_value_or_default(f, values)) for f in self._fields}
        db.execute_sql(statement.sql, statement.bind(bound))

    def _compose(self, names: tuple[str, ...]) -> pw.Query:
        del names  # an insert always names every column
        return self._model.insert({f: _mark(f.name) for f in self._fields})


class CompiledCompareAndSet(_Compiled):
    """UPDATE ... SET version = version + 1, <changes> WHERE <key> = ? AND version = ?; rows changed."""

    def __init__(self, model: type[pw.Model], key: pw.Field) -> None:
        super().__init__(model)
        self._key = key

    def execute(self, key: Any, expected_version: int, changes: Mapping[str, Any]) -> int:
        names = tuple(sorted(changes))
        db, statement = self._statement(names)
        bound = {n: self._field(n).db_value(changes[n]) for n in names}
        bound["__key"] = self._key.db_value(key)
        bound["__version"] = expected_version
        rows: int = db.execute_sql(statement.sql, statement.bind(bound)).rowcount
        return rows

    def _compose(self, names: tuple[str, ...]) -> pw.Query:
        version = self._field("version")
        assignments: dict[pw.Field, Any] = {self._field(n): _mark(n) for n in names}
        assignments[version] = version + 1
        guard = (self._key == _mark("__key")) & (version == _mark("__version"))
        return self._model.update(assignments).where(guard)


def _value_or_default(field: pw.Field, values: Mapping[str, Any]) -> Any:
    if field.name in values:
        return values[field.name]
    return field.default() if callable(field.default) else field.default


Compose = Callable[[Callable[[str], pw.Value], tuple[str, ...]], pw.Query]


class CompiledQuery(_Compiled):
    """Any statement, composed once per variant: `compose(mark, variant)` builds the Peewee query with
    `mark(name)` wherever a value goes (the variant, a tuple of names, picks e.g. which columns an
    UPDATE sets); `execute` binds values already in their stored form (naive UTC datetimes, enum
    values: what the fields' converters would hand over) and returns the cursor."""

    def __init__(self, model: type[pw.Model], compose: Compose) -> None:
        super().__init__(model)
        self._build = compose

    def execute(self, values: Mapping[str, Any], variant: tuple[str, ...] = ()) -> Any:
        db, statement = self._statement(variant)
        return db.execute_sql(statement.sql, statement.bind(values))

    def _compose(self, names: tuple[str, ...]) -> pw.Query:
        return self._build(_mark, names)

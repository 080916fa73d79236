"""SQL for the queue's hot paths, written once per process and reused with new values on every letter.

peewee spends about half a millisecond writing one INSERT of a Letter row (thirty-odd columns),
more than SQLite takes to run it; storing and sending a thousand letters wrote the same few
statements thousands of times. These build the same SQL from the models' own table and column
names, once, and bind values through each field's ``db_value`` exactly as peewee would. Plain
SQL with double-quoted names and the driver's placeholder: SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from functools import lru_cache

from portal.db import database, execute_many


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@lru_cache(maxsize=None)
def _insert_sql(model, param: str, returning: bool) -> tuple[str, tuple]:
    """The INSERT of every column but the id, and how each value is written (see _row)."""
    fields = tuple(f for f in model._meta.sorted_fields if f is not model._meta.primary_key)
    sql = (f"INSERT INTO {_quoted(model._meta.table_name)} ("
           + ", ".join(_quoted(f.column_name) for f in fields)
           + ") VALUES (" + ", ".join([param] * len(fields)) + ")")
    if returning:
        sql += f" RETURNING {_quoted(model._meta.primary_key.column_name)}"
    # For each field: its name, its db_value, and its default (a callable one is called per row).
    return sql, tuple((f.name, f.db_value, f.default, callable(f.default)) for f in fields)


@lru_cache(maxsize=None)
def _update_sql(model, names: tuple, param: str) -> tuple[str, tuple]:
    fields = tuple(model._meta.fields[name] for name in names)
    sql = (f"UPDATE {_quoted(model._meta.table_name)} SET "
           + ", ".join(f"{_quoted(f.column_name)} = {param}" for f in fields)
           + f" WHERE {_quoted(model._meta.primary_key.column_name)} = {param}")
    return sql, fields


def _row(plan, values: dict) -> list:
    row = []
    for name, db_value, default, call in plan:
        value = values[name] if name in values else default() if call else default
        row.append(None if value is None else db_value(value))
    return row


def insert_row(model, values: dict) -> int:
    """INSERT one row (fields not given take their defaults, as in Model.create); returns its id."""
    returning = bool(database.returning_clause)
    sql, plan = _insert_sql(model, database.param, returning)
    cursor = database.execute_sql(sql, _row(plan, values))
    return cursor.fetchone()[0] if returning else cursor.lastrowid


def insert_rows(model, rows: list) -> None:
    """INSERT many rows with one prepared statement (no ids returned)."""
    if not rows:
        return
    sql, plan = _insert_sql(model, database.param, False)
    execute_many(sql, [_row(plan, values) for values in rows])


def update_rows(model, names: tuple, rows: list) -> None:
    """UPDATE rows by id: ``rows`` are (id, {name: value for name in names}); one prepared statement for all."""
    if not rows:
        return
    sql, fields = _update_sql(model, tuple(names), database.param)
    execute_many(
        sql, [[f.db_value(values[f.name]) for f in fields] + [row_id]
              for row_id, values in rows])


@lru_cache(maxsize=None)
def _update_held_sql(model, names: tuple, column: str, param: str) -> tuple[str, tuple]:
    sql, fields = _update_sql(model, names, param)
    return sql + f" AND {_quoted(model._meta.fields[column].column_name)} = {param}", fields


def update_rows_held(model, names: tuple, rows: list, column: str) -> set:
    """UPDATE rows by id only while ``column`` still holds the given value; returns the ids written.

    ``rows`` are (id, {name: value}, expected value of ``column``). Call it inside ``writing()``:
    the rows still held are read first, and kept so until the commit (SQLite's write lock, taken
    at BEGIN IMMEDIATE; FOR UPDATE on PostgreSQL), then one prepared statement writes them all,
    the condition still in it.
    """
    if not rows:
        return set()
    sql, fields = _update_held_sql(model, tuple(names), column, database.param)
    field = model._meta.fields[column]
    expected = {row_id: field.db_value(value) for row_id, _, value in rows}
    read = (f"SELECT {_quoted(model._meta.primary_key.column_name)}, {_quoted(field.column_name)} "
            f"FROM {_quoted(model._meta.table_name)} WHERE {_quoted(model._meta.primary_key.column_name)} IN "
            f"({', '.join([database.param] * len(expected))})")
    if database.for_update:
        read += " FOR UPDATE"
    held = {row_id for row_id, value in database.execute_sql(read, list(expected)).fetchall()
            if value is not None and value == expected[row_id]}
    execute_many(sql, [
        [f.db_value(values[f.name]) for f in fields] + [row_id, expected[row_id]]
        for row_id, values, _ in rows if row_id in held])
    return held


def update_row_held(model, row_id: int, column: str, expected, **values) -> bool:
    """UPDATE one row by id only while ``column`` still holds ``expected``; whether it did (committed at once
    outside a transaction)."""
    sql, fields = _update_held_sql(model, tuple(values), column, database.param)
    cursor = database.execute_sql(sql, [f.db_value(values[f.name]) for f in fields]
                                  + [row_id, model._meta.fields[column].db_value(expected)])
    return cursor.rowcount == 1


def update_row(model, row_id: int, **values) -> None:
    """UPDATE one row by id; outside a transaction it is committed at once (the driver runs in autocommit)."""
    sql, fields = _update_sql(model, tuple(values), database.param)
    database.execute_sql(sql, [f.db_value(values[f.name]) for f in fields] + [row_id])


@lru_cache(maxsize=None)
def _select_sql(model, names: tuple, by: str, param: str) -> str:
    fields = model._meta.fields
    return (f"SELECT {', '.join(_quoted(fields[name].column_name) for name in names)} "
            f"FROM {_quoted(model._meta.table_name)} WHERE {_quoted(fields[by].column_name)} = {param}")


def select_rows(model, names: tuple, by: str, value) -> list:
    """The given columns (raw values) of the rows whose ``by`` column equals ``value``."""
    field = model._meta.fields[by]
    return database.execute_sql(_select_sql(model, tuple(names), by, database.param),
                                [field.db_value(value)]).fetchall()


@lru_cache(maxsize=None)
def _joined_sql(model, name: str, by: str, param: str, aggregate: str) -> str:
    fields = model._meta.fields
    return (f"SELECT {aggregate}({_quoted(fields[name].column_name)}, ' ') FROM {_quoted(model._meta.table_name)} "
            f"WHERE {_quoted(fields[by].column_name)} = {param}")


def joined_values(model, name: str, by: str, value) -> list:
    """One column of the rows whose ``by`` column equals ``value``, joined by the database into one string and
    split here: for thousands of short values without spaces, several times faster than fetching rows."""
    from peewee import PostgresqlDatabase

    aggregate = "string_agg" if isinstance(database.obj, PostgresqlDatabase) else "group_concat"
    sql = _joined_sql(model, name, by, database.param, aggregate)
    (joined,) = database.execute_sql(sql, [model._meta.fields[by].db_value(value)]).fetchone()
    return joined.split(" ") if joined else []

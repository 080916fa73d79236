"""A trigram index for live search on SQLite, so a search reads the matches, not every employee.

FTS5's trigram tokenizer answers "contains this text" for three or more characters from an
index. Triggers keep it in step with employee.search_text on every insert, update and delete,
whichever code writes. PostgreSQL keeps the plain substring scan (pg_trgm would be its match).
"""
from peewee import SqliteDatabase

STATEMENTS = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS employee_search USING fts5("
    "search_text, content='employee', content_rowid='id', tokenize='trigram')",
    "INSERT INTO employee_search(employee_search) VALUES ('rebuild')",
    "CREATE TRIGGER IF NOT EXISTS employee_search_insert AFTER INSERT ON employee BEGIN "
    "INSERT INTO employee_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS employee_search_delete AFTER DELETE ON employee BEGIN "
    "INSERT INTO employee_search(employee_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS employee_search_update AFTER UPDATE OF search_text ON employee BEGIN "
    "INSERT INTO employee_search(employee_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO employee_search(rowid, search_text) VALUES (new.id, new.search_text); END",
]


def upgrade(db, migrator):
    if not isinstance(db, SqliteDatabase):
        return
    for statement in STATEMENTS:
        db.execute_sql(statement)

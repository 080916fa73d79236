"""Live search looks in one case-folded column, so Cyrillic matches in any case on SQLite too.

The name-order index gains that column, so a search sorted by name tests each row inside the
index and reads the table only for matches (a rare word no longer reads all 10,000 rows), and
counting the matches scans the narrow index instead of the wide table.
"""
from peewee import TextField


def upgrade(db, migrator):
    from playhouse.migrate import migrate

    migrate(migrator.add_column("employee", "search_text", TextField(default="")))
    rows = db.execute_sql("SELECT id, name, email, department FROM employee").fetchall()
    for employee_id, name, email, department in rows:
        text = "\n".join(part or "" for part in (name, email, department)).casefold()
        db.execute_sql(f"UPDATE employee SET search_text = {db.param} WHERE id = {db.param}", (text, employee_id))
    db.execute_sql("DROP INDEX IF EXISTS employee_name_sort")
    db.execute_sql("CREATE INDEX IF NOT EXISTS employee_name_search ON employee (LOWER(name), id, search_text)")

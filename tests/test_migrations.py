"""Schema changes go through versioned migrations, and old databases upgrade."""
from peewee import SqliteDatabase

from portal import migrations
from portal.db import open_database
from portal.models import Employee


def test_a_database_made_by_the_first_migration_upgrades_to_the_newest(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    first = migrations.available()[0]
    assert migrations.upgrade(db, target=first) == [first]
    db.execute_sql("INSERT INTO employee (name, email, position, department, role, active, password_hash, "
                   "created_at, updated_at) VALUES ('Old Timer', 'old@example.com', '', '', 'admin', 1, '', "
                   "'2020-01-01', '2020-01-01')")
    newer = migrations.upgrade(db)
    assert newer == migrations.available()[1:]
    assert migrations.applied(db) == set(migrations.available())
    with Employee.bind_ctx(db):
        assert Employee.by_email("OLD@example.com").name == "Old Timer"  # the data survived
    assert migrations.upgrade(db) == []  # nothing left to do
    db.close()


def test_every_model_table_exists_after_upgrade(tmp_path):
    from portal.models import BaseModel

    db = open_database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    migrations.upgrade(db)
    tables = set(db.get_tables())
    models = _all_models(BaseModel)
    missing = [model.__name__ for model in models if model._meta.table_name not in tables]
    assert not missing, f"models without a migration: {missing}"
    for model in models:
        columns = {column.name for column in db.get_columns(model._meta.table_name)}
        fields = {field.column_name for field in model._meta.sorted_fields}
        assert fields <= columns, f"{model.__name__} fields missing from the table: {fields - columns}"
    db.close()


def test_every_index_a_model_declares_is_made_by_the_migrations(tmp_path):
    from portal.models import BaseModel

    db = open_database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    migrations.upgrade(db)
    for model in _all_models(BaseModel):
        made = {index.name: index for index in db.get_indexes(model._meta.table_name)}
        for declared in model._meta.fields_to_index():
            name = declared._name
            assert name in made, f"{model.__name__} declares {name}, which no migration makes"
            assert made[name].unique == declared._unique, name
            assert ("WHERE" in made[name].sql.upper()) == (declared._where is not None), name
    db.close()


def test_a_new_letter_is_left_out_of_the_indexes_of_columns_it_has_empty(tmp_path):
    """Storing a letter writes fewer pages: sent_at, lease_token and submit_token start empty."""
    db = open_database(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    migrations.upgrade(db)
    partial = {index.name for index in db.get_indexes("letter") if "WHERE" in index.sql.upper()}
    assert {"letter_mailbox_sent", "letter_lease", "letter_submit"} <= partial
    plan = " ".join(str(row) for row in db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT id FROM letter WHERE lease_token = ?", ["t"]).fetchall())
    assert "letter_lease" in plan  # `lease_token = ?` still reads the partial index
    db.close()


def _all_models(base):
    found = []
    for sub in base.__subclasses__():
        found.append(sub)
        found.extend(_all_models(sub))
    return found


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert isinstance(db, SqliteDatabase)
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    db.close()

"""Versioned schema migrations.

Each module `mNNNN_name.py` in this package defines `upgrade(db, migrator)`. A migration
declares the tables it creates as its own frozen models, so later changes to
`portal.models` never change what an old migration does.
"""
import datetime
import importlib
import pkgutil

from peewee import CharField, DateTimeField, Model, PostgresqlDatabase
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator


def available():
    """Names of every migration module, oldest first."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if info.name.startswith("m")
    )


def migrator_for(db):
    """The playhouse migrator that speaks this database's dialect."""
    if isinstance(db, PostgresqlDatabase):  # the pooled one too
        return PostgresqlMigrator(db)
    return SqliteMigrator(db)


def _history(db):
    class SchemaMigration(Model):
        name = CharField(primary_key=True)
        applied_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            database = db
            table_name = "schema_migration"

    db.create_tables([SchemaMigration])
    return SchemaMigration


def applied(db):
    """Names of the migrations this database has had."""
    history = _history(db)
    return {row.name for row in history.select()}


def upgrade(db, target=None):
    """Apply every migration not yet applied, up to `target` (inclusive); each in one transaction."""
    history = _history(db)
    done = {row.name for row in history.select()}
    migrator = migrator_for(db)
    ran = []
    for name in available():
        if name not in done:
            module = importlib.import_module(f"{__name__}.{name}")
            with db.atomic():
                module.upgrade(db, migrator)
                history.create(name=name)
            ran.append(name)
        if target and name == target:
            break
    return ran

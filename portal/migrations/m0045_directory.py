"""Directory sync: which employee each directory entry is, and the report of every sync (or preview)."""
import datetime

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        class Meta:
            table_name = "employee"

    class DirectoryLink(BaseModel):
        employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE", unique=True)
        dn = CharField(max_length=1024, unique=True)
        manager_dn = CharField(max_length=1024, default="")
        gone = BooleanField(default=False)

        class Meta:
            table_name = "directory_link"

    class DirectorySync(BaseModel):
        started_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        finished_at = DateTimeField(null=True)
        dry_run = BooleanField(default=False)
        ok = BooleanField(default=False)
        problem = TextField(default="")
        report = TextField(default="{}")

        class Meta:
            table_name = "directory_sync"

    db.create_tables([DirectoryLink, DirectorySync])

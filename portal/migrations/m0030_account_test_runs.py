"""Account tests run off the request path: their progress, readable by whichever web process the form polls."""
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

    class AccountTestRun(BaseModel):
        id = CharField(max_length=32, primary_key=True)
        employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
        started_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        finished_at = DateTimeField(null=True)
        ok = BooleanField(null=True)
        stages = TextField(default="[]")
        problem = TextField(default="")
        proof = TextField(default="")

        class Meta:
            table_name = "account_test_run"

    db.create_tables([AccountTestRun])

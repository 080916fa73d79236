"""Account tests in progress and finished: what each web process can read back while the form polls."""
import json

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, TextField

from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee


class AccountTestRun(BaseModel):
    """One run of Test account: its stages as they finish, then the result (never a password)."""

    id = CharField(max_length=32, primary_key=True)  # random: the poll's URL names it
    employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
    started_at = DateTimeField(default=utcnow, index=True)
    finished_at = DateTimeField(null=True)
    ok = BooleanField(null=True)
    stages = TextField(default="[]")  # JSON list of the stages finished so far
    problem = TextField(default="")  # JSON of the first problem, once finished with one
    proof = TextField(default="")  # the signed save proof of a passed test

    class Meta:
        table_name = "account_test_run"

    @property
    def finished(self):
        return self.finished_at is not None

    def stage_list(self):
        return json.loads(self.stages or "[]")

    def problem_dict(self):
        return json.loads(self.problem) if self.problem else None

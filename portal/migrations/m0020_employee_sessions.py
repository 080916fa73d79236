"""Sessions the server can end: one row per signed-in browser, its key stored only as a hash.

Sign-out deletes its row; a password change, "Sign out everywhere", deactivation and an admin's
"Sign out this employee" delete the employee's rows, so every session cookie and remember cookie
issued before stops working at its next request.
"""
import datetime

from peewee import CharField, DateTimeField, ForeignKeyField, Model


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        class Meta:
            table_name = "employee"

    class EmployeeSession(BaseModel):
        employee = ForeignKeyField(Employee, backref="sessions", on_delete="CASCADE")
        key_hash = CharField(max_length=64, unique=True)
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        expires_at = DateTimeField(index=True)

        class Meta:
            table_name = "employee_session"

    db.create_tables([EmployeeSession])

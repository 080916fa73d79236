"""Employees and projects."""
import datetime

from peewee import BooleanField, CharField, DateTimeField, Model


def upgrade(db, migrator):
    class BaseModel(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Employee(BaseModel):
        name = CharField(max_length=255)
        email = CharField(max_length=255, unique=True)
        position = CharField(max_length=255, default="")
        department = CharField(max_length=255, default="", index=True)
        role = CharField(max_length=16, default="employee")
        active = BooleanField(default=True)
        language = CharField(max_length=8, null=True)
        password_hash = CharField(max_length=255, default="")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        updated_at = DateTimeField(default=datetime.datetime.utcnow)

    class Project(BaseModel):
        name = CharField(max_length=255, unique=True)
        archived = BooleanField(default=False)
        created_at = DateTimeField(default=datetime.datetime.utcnow)

    db.create_tables([Employee, Project])

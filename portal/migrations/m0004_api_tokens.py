"""Personal API tokens, stored hashed."""
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

    class ApiToken(BaseModel):
        owner = ForeignKeyField(Employee, backref="api_tokens", on_delete="CASCADE")
        name = CharField(max_length=100)
        token_hash = CharField(max_length=64, unique=True)
        hint = CharField(max_length=16, default="")
        created_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        last_used_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)
        revoked_by = ForeignKeyField(Employee, null=True, backref="+", on_delete="SET NULL")

        class Meta:
            table_name = "api_token"

    db.create_tables([ApiToken])

"""Single sign-on: the link from an OpenID Connect identity (issuer + subject) to its employee."""
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

    class SsoLink(BaseModel):
        employee = ForeignKeyField(Employee, backref="+", on_delete="CASCADE")
        issuer = CharField(max_length=255)
        subject = CharField(max_length=255)
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        last_sign_in_at = DateTimeField(default=datetime.datetime.utcnow)

        class Meta:
            table_name = "sso_link"
            indexes = ((("issuer", "subject"), True),)

    db.create_tables([SsoLink])

"""Workers say they are alive: one row per worker process, touched every half minute (portal/health.py)."""
import datetime

from peewee import CharField, DateTimeField, Model


def upgrade(db, migrator):
    class WorkerHeartbeat(Model):
        worker = CharField(max_length=200, primary_key=True)  # "host:pid"
        started_at = DateTimeField(default=datetime.datetime.utcnow)
        seen_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

        class Meta:
            database = db
            table_name = "worker_heartbeat"
            legacy_table_names = False

    db.create_tables([WorkerHeartbeat])

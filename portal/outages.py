"""Riding out a short database outage after a write: a request that stored something answers with it.

PostgreSQL restarting (or a failover) breaks every open connection. A request whose commit went
through must not answer 500 because reading the stored row back, or the commit's own
acknowledgement, met the broken connection: the client would send it again, or give up on a
letter that is in fact on its way.
"""
import logging
import time

from peewee import InterfaceError, OperationalError

from portal.db import database

log = logging.getLogger("portal.outages")
CONNECTION_LOST = (OperationalError, InterfaceError)


def reconnect():
    """Drop this thread's broken connection and open a new one."""
    try:
        database.close()
    except CONNECTION_LOST:
        pass
    database.connect(reuse_if_open=True)


def read_back(read, *, attempts=4, pause=0.5):
    """``read()``, tried again on a new connection while the database is briefly away (about 5 s in all)."""
    for attempt in range(attempts):
        try:
            return read()
        except CONNECTION_LOST as error:
            if attempt == attempts - 1:
                raise
            log.warning("the database connection broke after a write (%s); reading back again", error)
            time.sleep(pause * (attempt + 1))
            try:
                reconnect()
            except CONNECTION_LOST:
                continue

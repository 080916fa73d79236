"""A request that stored something answers with it, though its database connection broke just after."""
import pytest
from peewee import InterfaceError, OperationalError

from portal.db import database
from portal.models import Employee
from portal.outages import read_back
from tests import postgres


def _break_this_connection(cluster):
    """What a PostgreSQL restart does to an open connection: the server ends its backend."""
    pid = database.connection().get_backend_pid()
    admin = cluster.admin_connection()
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()


@pytest.mark.postgres
def test_reading_back_rides_out_a_broken_connection(request, app, employee):
    if not postgres.wanted():
        pytest.skip("needs PostgreSQL: PORTAL_TEST_POSTGRES=1 (make test-postgres)")
    cluster = request.getfixturevalue("postgres_cluster")
    database.connect(reuse_if_open=True)
    _break_this_connection(cluster)
    with pytest.raises((OperationalError, InterfaceError)):
        Employee.get_by_id(employee.id)  # what answered 500 before
    database.close()
    database.connect()
    _break_this_connection(cluster)
    assert read_back(lambda: Employee.get_by_id(employee.id).email) == employee.email

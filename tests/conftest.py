"""Fixtures shared by the whole suite: app, client, runner, auth, and data helpers."""
import logging
import re
import secrets
import shutil
from pathlib import Path

import jinja2
import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from portal import create_app
from portal.db import database, open_database
from portal.migrations import upgrade
from portal.models import Employee, Project
from tests import postgres
from tests.postgres import postgres_cluster  # noqa: F401  (a fixture)

# Each area keeps its fixtures in a module of its own under tests/fixtures/.
_FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = ["tests.servers.fixtures"] + sorted(
    f"tests.fixtures.{path.stem}" for path in _FIXTURES.glob("*.py") if not path.name.startswith("_")
)

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def restore_logging():
    """The root logger as it was before the test: an app made without TESTING configures logging (a handler that
    writes to the sys.stderr of the moment), and a later CLI test read those lines in its JSON output."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("huey", "huey.consumer", "huey.consumer.Scheduler")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, kept in levels.items():
        logging.getLogger(name).setLevel(kept)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A SQLite file with every migration applied, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    db = open_database(f"sqlite:///{path}")
    upgrade(db)
    db.close()
    return path


@pytest.fixture(scope="session")
def migrated_postgres(request):
    """A PostgreSQL template database with every migration applied."""
    cluster = request.getfixturevalue("postgres_cluster")
    name = cluster.new_database()
    db = open_database(cluster.url(name))
    upgrade(db)
    db.close()
    return cluster, name


@pytest.fixture
def database_url(request, tmp_path):
    """A fresh database for this test: SQLite, or PostgreSQL when PORTAL_TEST_POSTGRES=1."""
    if postgres.wanted():
        cluster, template = request.getfixturevalue("migrated_postgres")
        name = cluster.new_database(template=template)
        yield cluster.url(name)
        if not database.is_closed():
            database.close()
        cluster.drop_database(name)
    else:
        path = tmp_path / "portal.sqlite3"
        shutil.copy(request.getfixturevalue("migrated_sqlite"), path)
        yield f"sqlite:///{path}"


@pytest.fixture
def config(database_url, tmp_path):
    """The configuration every test app starts from; tests may change it before using `app`."""
    return {
        "TESTING": True,
        "SECRET_KEY": secrets.token_hex(16),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_INSECURE_COOKIES": True,
        "PORTAL_SECRET_KEYS": None,
        "RATELIMIT_ENABLED": False,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_OIDC_ALLOWED_HOSTS": "127.0.0.1:*",  # the test oidc-provider listens on loopback
    }


@pytest.fixture
def app(config, tmp_path):
    app = create_app(config)
    app.jinja_env.undefined = jinja2.StrictUndefined
    # No app context stays pushed: each request gets its own, as in production.
    database.connect(reuse_if_open=True)
    yield app
    if not database.is_closed():
        database.close()


class PortalClient(FlaskClient):
    """A test client that sends the CSRF token in a header on every state change, as htmx does."""

    def open(self, *args, **kwargs):
        method = kwargs.get("method", "GET").upper()
        if method not in ("GET", "HEAD", "OPTIONS") and kwargs.pop("csrf", True):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        else:
            kwargs.pop("csrf", None)
        return super().open(*args, **kwargs)

    def csrf_token(self):
        """A valid signed token for this client's session, made like Flask-WTF makes it."""
        with self.session_transaction() as session:
            raw = session.setdefault("csrf_token", secrets.token_hex(20))
        serializer = URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token")
        return serializer.dumps(raw)


@pytest.fixture
def client(app):
    app.test_client_class = PortalClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_employee(app):
    """Create an employee; any field may be overridden. Returns the Employee."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides):
        number = next(counter)
        password = overrides.pop("password", PASSWORD)
        values = {
            "name": f"Employee {number}",
            "email": f"employee{number}@example.com",
            "department": "Sales",
            "position": "Manager",
            "role": "employee",
        }
        values.update(overrides)
        employee = Employee(**values)
        employee.set_password(password)
        employee.save()
        return employee

    return make


@pytest.fixture
def make_project(app):
    """Create a project; the name may be given."""
    counter = iter(range(1, 1_000_000))

    def make(name=None, **overrides):
        return Project.create(name=name or f"Project {next(counter)}", **overrides)

    return make


@pytest.fixture
def admin(make_employee):
    return make_employee(name="Anna Admin", email="admin@example.com", role="admin", department="Office")


@pytest.fixture
def employee(make_employee):
    return make_employee(name="Erik Employee", email="erik@example.com", department="Sales")


@pytest.fixture
def other_employee(make_employee):
    return make_employee(name="Olga Other", email="olga@example.com", department="Support")


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, who, password=PASSWORD):
        """Sign in as an Employee (or an e-mail); returns the response."""
        email = who.email if isinstance(who, Employee) else who
        return self._client.post("/sign-in", data={"email": email, "password": password})

    def logout(self):
        return self._client.post("/sign-out")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def as_admin(client, auth, admin):
    auth.login(admin)
    return client


@pytest.fixture
def as_employee(client, auth, employee):
    auth.login(employee)
    return client


def page_text(response):
    """The visible text of an HTML response, tags removed and spaces folded (for assertions)."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"<wbr\s*/?>", "", html)  # a line-break opportunity, not a space
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()

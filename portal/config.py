"""Configuration: built-in defaults, then instance/config.py, then PORTAL_* variables, then the caller's mapping."""
import os
import secrets
from pathlib import Path

DEFAULTS = {
    "PORTAL_DATABASE_URL": None,  # None: sqlite file in the instance folder
    "PORTAL_DATABASE_POOL_SIZE": 20,  # PostgreSQL connections one process keeps open (0: a new one per request)
    "PORTAL_DATABASE_POOL_STALE": 300,  # seconds before a pooled connection is closed and opened afresh
    "PORTAL_DATABASE_POOL_WAIT": 10,  # seconds a request waits for a free pooled connection before failing
    "PORTAL_INSECURE_COOKIES": False,
    "PORTAL_PROXY_COUNT": 0,
    "PORTAL_RATELIMIT_STORAGE": "memory://",
    "PORTAL_SIGNIN_RATE_LIMIT": "10 per minute",
    "PORTAL_SSO_START_RATE_LIMIT": "60 per minute",  # "Sign in with" per client address: each keeps a row a day
    "PORTAL_REMEMBER_DAYS": 14,  # the longest one sign-in lasts, "Keep me signed in" or not
    "PORTAL_DEFAULT_LANGUAGE": "en",
    "PORTAL_ADMIN_EMAIL": "admin@example.com",
    "PORTAL_ADMIN_PASSWORD": None,
    "PORTAL_PAGE_SIZE": 25,
    "PORTAL_MAX_REQUEST_BYTES": 5 * 1024 * 1024,  # any form or upload; larger bodies are refused unread
    "PORTAL_IMPORT_MAX_BYTES": 4 * 1024 * 1024,  # one CSV import file
    "PORTAL_IMPORT_MAX_ROWS": 10_000,  # lines one CSV import may hold
    "PORTAL_MAIL_TIMEOUT": 10.0,
    "PORTAL_MAIL_DEADLINE": 30.0,  # seconds for a whole account test, reply fetch or connection
    "PORTAL_ACCOUNT_TESTS_AT_ONCE": 4,  # account tests running at the same time in one web process
    "PORTAL_MAIL_ALLOWED_PORTS": "25,465,587,2525,110,995,143,993",
    "PORTAL_MAIL_ALLOWED_HOSTS": "",
    "PORTAL_MAIL_CA_FILE": None,
    "PORTAL_MAIL_EHLO_NAME": None,
    "PORTAL_MAIL_PROVIDER_MX_LOOKUP": True,  # look up MX records to pick a provider for an unknown domain
    "PORTAL_MAIL_DNS_SERVERS": "",  # "ip[:port], ...": DNS servers autoconfiguration asks instead of the system's
    "PORTAL_SECRET_KEYS": None,
    "PORTAL_EMPLOYEES_MAY_ADD_MAILBOXES": True,
    "PORTAL_QUEUE_URL": None,
    "PORTAL_API_RATE_LIMIT": "120 per minute",  # per API token (or per address without one)
    "PORTAL_API_FAILED_AUTH_RATE_LIMIT": "20 per minute",  # refused bearer tokens per client address
    "PORTAL_ACCOUNT_TEST_RATE_LIMIT": "20 per minute",  # account tests per employee, pages and API together
    "PORTAL_LETTER_MAX_ATTEMPTS": 8,
    "PORTAL_LETTER_MAX_AGE": 86400,
    "PORTAL_LETTER_RETRY_BASE": 60,
    "PORTAL_LETTER_RETRY_MAX": 3600,  # longest back-off between two attempts, seconds
    "PORTAL_LETTER_LEASE": 300,
    "PORTAL_LETTER_BATCH_SIZE": 200,  # letters one worker claims at a time
    "PORTAL_MAILBOX_LETTERS_PER_MINUTE": 20,
    "PORTAL_RECIPIENT_LETTERS_LIMIT": 50,
    "PORTAL_RECIPIENT_LIMIT_WINDOW": 600,
    "PORTAL_REPLY_FETCH_MINUTES": 2,
    "PORTAL_MAILBOX_RECHECK_HOURS": 6,  # every mailbox in use is checked again in the background this often
    "PORTAL_LOG_FORMAT": "text",  # "json": one JSON object a line, for log collectors
    "PORTAL_LOG_LEVEL": "INFO",
    "PORTAL_LOG_CONFIGURE": True,  # False: leave logging as the embedding program set it
    "PORTAL_METRICS_ALLOW": "127.0.0.1,::1",  # addresses or CIDR ranges that may read /metrics
    "PORTAL_METRICS_TOKEN": None,  # a bearer token that may read /metrics from anywhere
    "PORTAL_METRICS_WORKER_DIR": None,  # the workers' PROMETHEUS_MULTIPROC_DIR, for their send durations
    "PORTAL_WORKER_SILENCE": 120,  # seconds without a worker heartbeat before the portal says none runs
    "PORTAL_BASE_URL": "",  # "https://portal.example.com": where links in the portal's own e-mails point
    "SECRET_KEY": None,
}


def parse_flag(value):
    """Read a yes/no setting written as a string in the environment."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def from_environment(environ=None):
    """Collect PORTAL_* settings from the environment, typed like the defaults."""
    environ = os.environ if environ is None else environ
    found = {}
    for name, value in environ.items():
        if not name.startswith("PORTAL_"):
            continue
        found[name] = _typed_like(DEFAULTS.get(name), name, value)
    if "PORTAL_SECRET_KEY" in found:
        found["SECRET_KEY"] = found.pop("PORTAL_SECRET_KEY")
    return found


def _typed_like(default, name, value):
    """An environment string read as the type of the setting's default (flag, whole number, number)."""
    try:
        if isinstance(default, bool):
            return parse_flag(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a {type(default).__name__}, not {value!r}") from None
    return value


def private_folder(path):
    """The instance folder, made if missing, readable by the portal's own user only (0700).

    It holds the database, the queue, the keys and their WAL files; an existing folder open to
    others is narrowed too. The files in it are made 0600 by whoever makes them.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.chmod(0o700)
    except PermissionError:  # someone else's folder: left as its owner set it
        pass
    return path


def instance_secret(instance_path, filename):
    """Read a secret generated once into the instance folder, creating it with mode 0600."""
    path = Path(instance_path) / filename
    if not path.exists():
        private_folder(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()

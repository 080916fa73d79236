"""One logging configuration for the web and the worker: who logged what, for which request, and no passwords.

Every line carries a timestamp, the level, the logger and the request id (``-`` outside a
request); PORTAL_LOG_FORMAT=json writes one JSON object a line for log collectors. The
request id is the caller's X-Request-ID when it is a plain token (nginx's $request_id), else
a new one, and every answer says it in X-Request-ID.
"""
import json
import logging
import re
import sys
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

from flask import g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HANDLER_NAME = "portal"


def masked_url(url):
    """The URL with the password of its user part replaced by ``***``: what may be printed or logged."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address goes back into brackets
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def current_request_id():
    """The id of the request being answered, or ``-`` outside a request."""
    if has_request_context():
        return g.get("request_id", "-")
    return "-"


def cause_of(error):
    """An exception in one line: its type and the first line of its message (no traceback)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class FaultLog:
    """Says each fault of a recurring job once, with its cause, and once that it is over.

    A database or queue outage fails every pass of every mailbox until it ends; logged each time, with a
    traceback, it buried the one line that mattered. ``failed(what, error)`` logs an ERROR when ``what`` starts
    failing or fails for another cause (a DEBUG line for a repeat), and ``succeeded(what)`` an INFO line when
    it works again.
    """

    def __init__(self, logger):
        self.logger = logger
        self.current = {}
        self.lock = threading.Lock()

    def failed(self, what, error):
        cause = cause_of(error)
        with self.lock:
            repeated = self.current.get(what) == cause
            self.current[what] = cause
        if repeated:
            self.logger.debug("%s failed again: %s", what, cause)
        else:
            self.logger.error("%s failed: %s", what, cause)

    def succeeded(self, what):
        with self.lock:
            cause = self.current.pop(what, None)
        if cause is not None:
            self.logger.info("%s works again (it failed with %s)", what, cause)


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record, so each format can name it."""

    def filter(self, record):
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, request id, message, and the traceback if any."""

    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (pytest swaps it for each test)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


# huey's own lines for every task it runs and every periodic task it enqueues: a dozen a minute on an idle worker,
# which buried `make run`'s one-time admin password within minutes. They are kept for DEBUG; the portal says what a
# pass did in its own line, and huey's warnings, errors and its consumer's start and stop lines stay.
HUEY_PER_TASK_LOGGERS = ("huey", "huey.consumer.Scheduler")
HUEY_CONSUMER_LOGGER = "huey.consumer"


def configure_logging(log_format="text", level="INFO", stream=None):
    """Send the portal's, Flask's and huey's records to one handler on the root logger, once per process.

    Called again (a second app in one process, the tests), it replaces its own handler rather than
    adding a second one, and leaves handlers others installed alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if str(log_format).lower() == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(str(level).upper())
    debugging = root.level <= logging.DEBUG
    for name in HUEY_PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if debugging else max(root.level, logging.WARNING))
    logging.getLogger(HUEY_CONSUMER_LOGGER).setLevel(logging.NOTSET if debugging else root.level)
    return handler


def init_app(app):
    """Configure logging from the app's settings and give every request an id."""
    # Tests leave logging to pytest (its capture), and configure it themselves where it is under test.
    if app.config.get("PORTAL_LOG_CONFIGURE", True) and not app.testing:
        configure_logging(app.config["PORTAL_LOG_FORMAT"], app.config["PORTAL_LOG_LEVEL"])
        # Flask's own handler would write each record a second time, without the request id.
        from flask.logging import default_handler

        app.logger.removeHandler(default_handler)

    @app.before_request
    def take_request_id():
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _PLAIN_ID.fullmatch(offered) else uuid.uuid4().hex

    @app.after_request
    def say_request_id(response):
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

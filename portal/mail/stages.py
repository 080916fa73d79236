"""Stages of an account check: what was tried, how long it took, what the server said."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from .deadline import Deadline, DeadlineExceeded
from .errors import MailError

log = logging.getLogger("portal.mail")

# Stable codes the page and the JSON output use; labels are for people.
STAGE_LABELS: dict[str, dict[str, str]] = {
    "smtp.resolve": {"en": "Outgoing: find the server", "ru": "Исходящая: поиск сервера"},
    "smtp.connect": {"en": "Outgoing: connect", "ru": "Исходящая: подключение"},
    "smtp.tls": {"en": "Outgoing: encryption (TLS)", "ru": "Исходящая: шифрование (TLS)"},
    "smtp.greeting": {"en": "Outgoing: server greeting", "ru": "Исходящая: приветствие сервера"},
    "smtp.login": {"en": "Outgoing: sign in", "ru": "Исходящая: вход"},
    "smtp.envelope": {"en": "Outgoing: sender accepted, letters to others relayed",
                      "ru": "Исходящая: отправитель принят, письма другим пересылаются"},
    "smtp.test_letter": {"en": "Outgoing: test letter", "ru": "Исходящая: тестовое письмо"},
    "smtp.send": {"en": "Sending the letter", "ru": "Отправка письма"},
    "pop3.resolve": {"en": "POP3: find the server", "ru": "POP3: поиск сервера"},
    "pop3.connect": {"en": "POP3: connect", "ru": "POP3: подключение"},
    "pop3.tls": {"en": "POP3: encryption (TLS)", "ru": "POP3: шифрование (TLS)"},
    "pop3.greeting": {"en": "POP3: server greeting", "ru": "POP3: приветствие сервера"},
    "pop3.login": {"en": "POP3: sign in", "ru": "POP3: вход"},
    "pop3.mailbox": {"en": "POP3: count messages", "ru": "POP3: подсчёт писем"},
    "imap.resolve": {"en": "IMAP: find the server", "ru": "IMAP: поиск сервера"},
    "imap.connect": {"en": "IMAP: connect", "ru": "IMAP: подключение"},
    "imap.tls": {"en": "IMAP: encryption (TLS)", "ru": "IMAP: шифрование (TLS)"},
    "imap.greeting": {"en": "IMAP: server greeting", "ru": "IMAP: приветствие сервера"},
    "imap.login": {"en": "IMAP: sign in", "ru": "IMAP: вход"},
    "imap.mailbox": {"en": "IMAP: open the inbox", "ru": "IMAP: открытие входящих"},
    "pop3.round_trip": {"en": "POP3: test letter arrived", "ru": "POP3: тестовое письмо пришло"},
    "imap.round_trip": {"en": "IMAP: test letter arrived", "ru": "IMAP: тестовое письмо пришло"},
}


def stage_label(name: str, lang: str = "en") -> str:
    """Return the human label of a stage code in "ru" or "en" (the code itself if unknown)."""
    labels = STAGE_LABELS.get(name)
    if labels is None:
        return name
    return labels.get(lang) or labels["en"]


@dataclass(frozen=True)
class Stage:
    """One finished step of a check."""

    name: str
    ok: bool
    ms: int
    detail: str = ""
    server_reply: str = ""
    side: str = "outgoing"  # "outgoing" | "incoming"
    fingerprint: str | None = None  # SHA-256 of the server certificate, when TLS got that far
    certificate_expires: str | None = None  # ISO date and time (UTC) the certificate ends, when TLS got that far

    def label(self, lang: str = "en") -> str:
        """The stage's human label."""
        return stage_label(self.name, lang)

    def to_dict(self) -> dict:
        """The stage as in the JSON output of a check."""
        return {"name": self.name, "ok": self.ok, "ms": self.ms, "detail": self.detail}


@dataclass
class StepProgress:
    """What a running step has learned so far; filled in by the code inside the step."""

    detail: str = ""
    server_reply: str = ""
    fingerprint: str | None = None
    certificate_expires: str | None = None


@dataclass
class StageLog:
    """Records the stages of one side of a check and turns failures into MailError."""

    side: str = "outgoing"
    provider: str | None = None
    stages: list[Stage] = field(default_factory=list)
    deadline: Deadline | None = None  # a step that fails after it passed is explained as "too slow"
    on_stage: Callable[[Stage], None] | None = None  # told of each stage as it finishes (a live progress line)
    _held: list[Stage] | None = field(default=None, repr=False)

    @contextmanager
    def until_greeted(self, protocol: str) -> Iterator[None]:
        """Hold back the stages of connecting until the server has greeted as a mail server.

        If it never does (a closed or filtered port, another service), the held stages give way to one
        failed "<protocol>.connect" stage without details, so the answer looks the same whatever listens.
        """
        self._held = []
        started = time.perf_counter()
        try:
            yield
        except MailError as error:
            held, self._held = self._held, None
            if error.problem.code != "no_mail_server":
                self._publish(held)
                raise
            name = f"{protocol}.connect"
            self._record(name, False, started, StepProgress(), "")
            raise MailError(replace(error.problem, stage=name, server_reply="")) from error.__cause__
        held, self._held = self._held, None
        self._publish(held)

    @contextmanager
    def step(self, name: str) -> Iterator[StepProgress]:
        """Time a step; on any error record it as failed and raise MailError with its Problem."""
        from .problems import Problem, classify  # problems imports nothing from here; deferred to keep it light

        progress = StepProgress()
        started = time.perf_counter()
        try:
            if self.deadline is not None:
                self.deadline.check()
            yield progress
            if self.deadline is not None and self.deadline.expired:
                # A read cut short by the deadline can look complete (half a greeting); it is not.
                raise DeadlineExceeded(self.deadline.seconds)
        except MailError:
            raise
        except Exception as exc:
            if self.deadline is not None and self.deadline.expired:
                # Whatever the shut-down socket made the client say, the cause is the deadline; the
                # portal's own finding, not words of the server, so it is the stage's detail only.
                progress.detail = str(DeadlineExceeded(self.deadline.seconds))
                problem = Problem(code="too_slow", stage=name, server_reply="", provider=self.provider)
            else:
                problem = classify(exc, stage=name, provider=self.provider)
            self._record(name, False, started, progress, problem.server_reply)
            raise MailError(problem) from exc
        else:
            self._record(name, True, started, progress, progress.server_reply)

    def _record(self, name: str, ok: bool, started: float, progress: StepProgress, reply: str) -> None:
        ms = round((time.perf_counter() - started) * 1000)
        stage = Stage(name=name, ok=ok, ms=ms, detail=progress.detail or reply, server_reply=reply,
                      side=self.side, fingerprint=progress.fingerprint,
                      certificate_expires=progress.certificate_expires)
        log.debug("stage %s ok=%s %d ms: %s", name, ok, ms, stage.detail)
        if self._held is not None:
            self._held.append(stage)
        else:
            self._publish([stage])

    def _publish(self, stages: list[Stage]) -> None:
        for stage in stages:
            self.stages.append(stage)
            if self.on_stage is not None:
                self.on_stage(stage)

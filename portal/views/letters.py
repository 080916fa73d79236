"""Letters: New letter, the Outbox, a letter's page with its history and replies, retry and cancel."""
import datetime
import secrets
import zlib
from functools import partial

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from peewee import JOIN

from portal.db import MAX_ID, whole_number
from portal.htmx import is_htmx, nav_counts, render_htmx
from portal.letters.compose import LetterError, queue_letter
from portal.letters.outcomes import cancel_letter, nobody_left, retry_letter
from portal.letters.worker import wake_sender
from portal.mail.problems import Problem
from portal.models import (Employee, Letter, LetterAttempt, LetterRecipient, Mailbox, MailboxInbox, Project, Reply,
                           utcnow)
from portal.models.letters import PENDING_STATES, STATES
from portal.pagination import paginate
from portal.security import local_target
from portal.sender import resolve_sender
from portal.views.health import workers_seen_once

bp = Blueprint("letters", __name__)

# The Outbox counts matching letters up to this many (more only to reach a later page): counting every letter of
# a large table on each load cost more than the page itself (bench/bench_outbox.py).
OUTBOX_COUNT_LIMIT = 10_000
# A final letter's page keeps asking for replies this long after the letter was finished, this often; replies are
# fetched every PORTAL_REPLY_FETCH_MINUTES, and an unchanged letter answers 204 (nothing to swap) to the question.
REPLY_WATCH = datetime.timedelta(minutes=30)
REPLY_WATCH_SECONDS = 10

STATE_LABELS = {
    "queued": _l("Queued"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "deferred": _l("Will retry"),
    "failed": _l("Not sent"),
    "uncertain": _l("May not have arrived"),
    "cancelled": _l("Cancelled"),
}
STATE_BADGES = {"sent": "badge-ok", "failed": "badge-fail", "uncertain": "badge-warn", "deferred": "badge-warn"}
OUTCOME_LABELS = {
    "sent": _l("Accepted by the server"),
    "deferred": _l("Temporary failure, will retry"),
    "failed": _l("Refused"),
    "uncertain": _l("Connection lost after the letter was sent"),
    "lost": _l("Worker stopped after the letter was sent"),
    "limited": _l("Held back"),  # why (a limit, a paused or untested address) is the line below it
    "cancelled": _l("Cancelled"),
}
RECIPIENT_LABELS = {
    "pending": _l("waiting"),
    "accepted": _l("accepted"),
    "refused": _l("refused"),
    "deferred": _l("refused for now"),
    "bounced": _l("bounced"),
}


def _lang():
    return str(get_locale() or "en")


@bp.app_template_global()
def letter_problem(code, problem=None):
    """(title, advice) for a problem code, in the page's language: the servers' problems and the queue's own
    situations alike come from the one catalogue (portal/mail/problems.toml), as in the API."""
    problem = problem or Problem(code=code, stage="", server_reply="")
    return problem.title(_lang()), problem.advice(_lang())


@bp.app_context_processor
def letter_globals():
    """Labels for states, and the count behind the Outbox badge (computed only when the nav asks)."""

    def outbox_attention():
        if not current_user.is_authenticated:
            return 0
        return Letter.needing_attention(current_user)

    return {"outbox_attention": outbox_attention, "letter_state_labels": STATE_LABELS,
            "letter_state_badges": STATE_BADGES}


def _letter_or_404(letter_id):
    """A letter the current person may see; anyone else's answers 404 like a missing one."""
    letter = Letter.visible_to(current_user).where(Letter.id == letter_id).first()
    return letter or abort(404)


def _safe_next(default):
    return local_target(request.form.get("next") or request.args.get("next")) or default


# ------------------------------------------------------------------ New letter

def _project_from(value):
    try:
        project_id = whole_number(value or 0)
    except (TypeError, ValueError):
        return None
    if not project_id:
        return None
    return Project.get_or_none((Project.id == project_id) & (Project.archived == False))  # noqa: E712


def _mailbox_label(mailbox):
    return f"{mailbox.display_name} <{mailbox.address}>" if mailbox.display_name else mailbox.address


def _fill_choices(form, decision):
    from portal.forms import choices

    form.project.choices = choices([("", _("No project"))] + [(p.id, p.name) for p in Project.active_projects()])
    form.mailbox.choices = choices([(m.id, _mailbox_label(m)) for m in decision.choices])


def _prefill_reply(form, reply_id):
    """Fill To, Subject and the thread headers from a reply the person may see."""
    reply = (Reply.select().join(Letter).where((Reply.id == reply_id))
             .where(Letter.id.in_(Letter.visible_to(current_user).select(Letter.id))).first())
    if reply is None:
        return None
    form.to.data = reply.sender
    subject = reply.subject or reply.letter.subject
    form.subject.data = subject if subject.lower().startswith(("re:", "на:")) else "Re: " + subject
    form.in_reply_to.data = reply.message_id
    form.references.data = " ".join(filter(None, [reply.letter.message_id, reply.references, reply.message_id]))
    return reply.letter.project


def _usual_project(person):
    """(project, chosen) a new letter starts with: the project of the person's last letter (None for a letter
    outside any project), else the only active project; chosen is False when neither decides it."""
    last = Letter.select(Letter.project).where(Letter.author == person).order_by(
        Letter.created_at.desc(), Letter.id.desc()).first()
    if last is not None:
        if last.project_id is None:
            return None, True
        project = _project_from(last.project_id)
        if project is not None:
            return project, True
    active = list(Project.active_projects().limit(2))
    return (active[0] if len(active) == 1 else None), len(active) < 2


@bp.route("/letters/new", methods=["GET", "POST"])
@login_required
def new():
    """Write a letter: project, recipients, subject, text, and the address it leaves from."""
    from portal.forms.letters import LetterForm

    form = LetterForm()
    project = _project_from(request.values.get("project"))
    chosen = True  # a project the person (or the letter replied to) chose; else the sender block waits neutrally
    if request.method == "GET":
        form.submit_token.data = secrets.token_urlsafe(24)
        form.to.data = request.args.get("to", "")[:2000] or None
        reply_id = request.args.get("reply", type=whole_number)
        if reply_id:
            project = _prefill_reply(form, reply_id) or project
            project = project if project is not None and not project.archived else None
        elif "project" not in request.args:
            project, chosen = _usual_project(current_user)
        form.project.data = str(project.id) if project else ""
    decision = resolve_sender(current_user, project)
    _fill_choices(form, decision)
    if request.method == "GET" and decision.mailbox is not None:
        form.mailbox.data = str(decision.mailbox.id)
    # A project posted but not among the active ones (archived meanwhile, or made up) is refused, not read as
    # "No project": the letter would leave from another address than the person chose for.
    project_refused = request.method == "POST" and bool((request.form.get("project") or "").strip()) \
        and project is None
    valid = form.validate_on_submit()
    if project_refused:
        form.project.errors = [*form.project.errors,
                               _("This project is archived or does not exist. Choose another project.")]
    if valid and not project_refused:
        mailbox = next((m for m in decision.choices if str(m.id) == form.mailbox.data), None)
        try:
            if mailbox is None:  # the page always names the address; the rule picks only for the API
                raise LetterError("mailbox", _("Choose the address the letter leaves from."))
            letter = queue_letter(
                current_user._get_current_object(), project, mailbox, to=form.to.data,
                cc=form.cc.data or "", subject=form.subject.data, body=form.body.data,
                in_reply_to=form.in_reply_to.data or "", references=form.references.data or "",
                submit_token=form.submit_token.data or None, save_contacts=form.save_contacts.data,
                wake=partial(wake_sender, current_app._get_current_object()),
                check_sender=False,  # one of the rule's own choices for this person and project, in this request
            )
        except LetterError as error:
            target = getattr(form, error.field, None) if error.field else None
            if target is not None and target.type == "HiddenField":  # a reply's thread ids: said above the form
                target = None
            (target.errors if target is not None else form.form_errors).append(str(error.message))
        else:  # the letter page says what happens to it, and keeps saying it as that changes: no flash to go stale
            return redirect(url_for("letters.letter", letter_id=letter.id))
    return render_htmx("letters/new.html", form=form, decision=decision, lang=_lang(), oob=False, chosen=chosen)


@bp.route("/letters/new/sender")
@login_required
def sender():
    """The From choices and their explanation for the chosen project (swapped in when the project changes)."""
    from portal.forms.letters import LetterForm

    form = LetterForm(formdata=None)
    project = _project_from(request.args.get("project"))
    decision = resolve_sender(current_user, project)
    _fill_choices(form, decision)
    form.mailbox.data = str(decision.mailbox.id) if decision.mailbox else ""
    return render_htmx("letters/sender.html", form=form, decision=decision, lang=_lang(), oob=True, chosen=True)


# ------------------------------------------------------------------ Outbox

def _outbox_filters():
    """The Outbox filters from the query string; mailbox and employee only for admins."""
    filters = {
        "state": request.args.get("state", "") if request.args.get("state", "") in STATES else "",
        "project": request.args.get("project", type=whole_number) or None,
    }
    if current_user.is_admin:
        filters["mailbox"] = request.args.get("mailbox", type=whole_number) or None
        filters["employee"] = request.args.get("employee", type=whole_number) or None
    return filters


def _outbox_query(filters, *, for_count=False):
    query = Letter.visible_to(current_user)
    if not for_count:  # counting needs neither the project nor the author: no join over every letter
        query = (query.select(Letter, Project, Employee)
                 .join(Project, JOIN.LEFT_OUTER, on=(Letter.project == Project.id)).switch(Letter)
                 .join(Employee, on=(Letter.author == Employee.id)))
    filters = filters or {"state": "", "project": None}
    if filters["state"]:
        query = query.where(Letter.state == filters["state"])
    if filters["project"]:
        query = query.where(Letter.project == filters["project"])
    if filters.get("mailbox"):
        query = query.where(Letter.mailbox == filters["mailbox"])
    if filters.get("employee"):
        query = query.where(Letter.author == filters["employee"])
    return query.order_by(Letter.created_at.desc(), Letter.id.desc())


def _fetch_problems():
    """Reply-fetch failures of the mailboxes this person owns (admins: company ones too)."""
    owned = Mailbox.owner == current_user.id
    if current_user.is_admin:
        owned |= Mailbox.scope == "company"
    return list(MailboxInbox.select(MailboxInbox, Mailbox).join(Mailbox)
                .where((MailboxInbox.problem_code != "") & owned & (Mailbox.receive_replies == True)))  # noqa: E712


def letter_version(letter):
    """A short fingerprint of what the queue changes and the Outbox row and the letter page show of a letter."""
    facts = (letter.state, letter.attempts, letter.reply_count, letter.bounced, letter.waiting_for,
             letter.problem_code, letter.next_attempt_at, letter.finished_at)
    return format(zlib.crc32(repr(facts).encode()), "x")


def _recipient_standing(rows):
    """Of these letters, (those nobody is left to send to, sent ones some recipient refused): one query."""
    ids = [letter.id for letter in rows if letter.can_retry or letter.state == "sent"]
    open_or_refused = {}
    if ids:
        for letter_id, status in (LetterRecipient.select(LetterRecipient.letter, LetterRecipient.status)
                                  .where(LetterRecipient.letter.in_(ids)
                                         & LetterRecipient.status.in_(("pending", "deferred", "refused")))
                                  .distinct().tuples()):
            open_or_refused.setdefault(letter_id, set()).add(status)
    settled = {letter.id for letter in rows
               if letter.can_retry and not open_or_refused.get(letter.id, set()) & {"pending", "deferred"}}
    partly_refused = {letter.id for letter in rows
                      if letter.state == "sent" and "refused" in open_or_refused.get(letter.id, ())}
    return settled, partly_refused


def _shown(value):
    """{letter id: version} from the Outbox poll's `shown` argument ("id.version,..."); None when absent."""
    if not value:
        return None
    shown = {}
    for item in value.split(",")[:100]:
        number, _dot, version = item.partition(".")
        if number.isdigit() and len(number) < 19:
            shown[int(number)] = version
    return shown


def _outbox_context(rows):
    """What every rendering of Outbox rows needs, and the `shown` argument of the poll that follows it."""
    settled, partly_refused = _recipient_standing(rows)
    pending = any(letter.state in PENDING_STATES for letter in rows)
    shown = ",".join(f"{letter.id}.{letter_version(letter)}" for letter in rows)
    return {"settled": settled, "partly_refused": partly_refused, "pending": pending, "shown": shown,
            "now": utcnow(), "waiting_for_worker": _waiting_for_worker(rows)}


def _waiting_for_worker(rows):
    """True when some of these letters wait to be sent and no worker has written a heartbeat lately."""
    if not any(letter.state in ("queued", "deferred") for letter in rows):
        return False
    return not workers_seen_once()


@bp.route("/outbox")
@login_required
def outbox():
    """Letters with their state, attempts, next attempt and failures; asks for changes while any is in flight."""
    filters = _outbox_filters()
    page = request.args.get("page", 1, type=whole_number)
    shown = _shown(request.args.get("shown"))
    if shown and is_htmx():
        return _outbox_changes(filters, page, shown)
    size = current_app.config["PORTAL_PAGE_SIZE"]
    return _outbox_list(filters, page, size, oob=False)


def _outbox_list(filters, page, size, *, oob):
    limit = min(max(OUTBOX_COUNT_LIMIT, (page or 1) * size), MAX_ID - 1) + 1  # an absurd ?page= stays an integer
    counted = _outbox_query(filters, for_count=True).order_by().limit(limit).count()
    listing = paginate(_outbox_query(filters), page, size, total=counted)
    options = {}
    if current_user.is_admin:
        options["mailboxes"] = list(Mailbox.select(Mailbox.id, Mailbox.address).order_by(Mailbox.address))
        options["employees"] = list(Employee.select(Employee.id, Employee.name).order_by(Employee.name))
    options["projects"] = list(Project.select(Project.id, Project.name).order_by(Project.name))
    args = {key: value for key, value in filters.items() if value}
    return render_htmx("letters/outbox.html", rows=listing.rows, total=listing.total, more=counted >= limit,
                       page=listing.page, pages=listing.pages, filters=filters, args=args, options=options,
                       fetch_problems=_fetch_problems(), states=STATES, oob=oob, **_outbox_context(listing.rows))


def _outbox_changes(filters, page, shown):
    """The Outbox poll's answer: only the rows whose letter changed since the list or the last poll showed them,
    and the poll that follows; the whole list when a new letter came first (first page) or a shown one went away;
    nothing at all when nothing changed."""
    rows = list(_outbox_query(None).where(Letter.id.in_(list(shown))))
    newest = None
    if (page or 1) == 1:
        newest = _outbox_query(filters, for_count=True).select(Letter.id).limit(1).scalar()
    if len(rows) < len(shown) or (newest is not None and newest not in shown):
        return _outbox_list(filters, page, current_app.config["PORTAL_PAGE_SIZE"], oob=True)
    changed = [letter for letter in rows if letter_version(letter) != shown[letter.id]]
    if not changed:
        return ""
    rows.sort(key=lambda letter: list(shown).index(letter.id))
    args = {key: value for key, value in filters.items() if value}
    return render_htmx("letters/outbox.html", partial="letters/partial/outbox_changes.html", rows=changed,
                       page=page, args=args, **_outbox_context(rows))


@bp.route("/letters/<int:letter_id>")
@login_required
def letter(letter_id):
    """One letter: its recipients, every attempt, and the replies received; asks for changes until it is final,
    then for replies a while longer."""
    letter = _letter_or_404(letter_id)
    now = utcnow()
    finished = letter.finished_at or letter.sent_at
    watching = letter.pending or (finished is not None and now - finished < REPLY_WATCH)
    if is_htmx() and request.args.get("seen") == letter_version(letter) and watching:
        return "", 204  # unchanged: htmx swaps nothing, and the page asks again
    recipients = list(LetterRecipient.select().where(LetterRecipient.letter == letter.id).order_by(LetterRecipient.id))
    history = list(LetterAttempt.select().where(LetterAttempt.letter == letter.id).order_by(LetterAttempt.id))
    replies = list(Reply.select().where(Reply.letter == letter.id).order_by(Reply.date, Reply.id))
    settled = not any(r.status in ("pending", "deferred") for r in recipients)
    partly_refused = letter.state == "sent" and any(r.status == "refused" for r in recipients)
    poll = 2 if letter.pending else (REPLY_WATCH_SECONDS if watching else None)
    return render_htmx("letters/letter.html", letter=letter, recipients=recipients, history=history,
                       replies=replies, now=now, settled=settled, partly_refused=partly_refused, poll=poll,
                       failure_unseen=failure_unseen(letter), version=letter_version(letter),
                       replies_unread=[reply.id for reply in replies
                                       if reply.read_at is None and letter.author_id == current_user.id],
                       waiting_for_worker=_waiting_for_worker([letter]))


def failure_unseen(letter):
    """True while the author has not looked at their failed (or maybe undelivered) letter: the Outbox badge."""
    return letter.author_id == current_user.id and letter.state in ("failed", "uncertain") and not letter.failure_seen


@bp.route("/letters/<int:letter_id>/seen", methods=["POST"])
@login_required
def seen(letter_id):
    """The author looked at their failed letter: it leaves the Outbox badge, and its failure's notification is read.
    The letter's page posts this once it is shown (a GET of the page changes nothing)."""
    letter = _letter_or_404(letter_id)
    if failure_unseen(letter):
        Letter.update(failure_seen=True).where(Letter.id == letter.id).execute()
        from portal.notifications import mark_letter_seen  # the failure's notification is seen with it

        mark_letter_seen(current_user, letter.id)
    if is_htmx():
        return nav_counts()
    return redirect(url_for("letters.letter", letter_id=letter.id), code=303)


@bp.route("/letters/<int:letter_id>/retry", methods=["POST"])
@login_required
def retry(letter_id):
    """Queue a failed, uncertain, deferred or cancelled letter again now."""
    letter = _letter_or_404(letter_id)
    if retry_letter(letter):
        wake_sender(current_app, letter)  # the page's state says it is queued again, and follows it
    elif letter.can_retry and nobody_left([letter.id]):
        flash(_("Every recipient has already accepted or refused this letter for good, so sending it again "
                "would change nothing. Check the addresses and write a new letter."), "error")
    else:
        flash(_("This letter cannot be sent again now."), "error")
    return redirect(_safe_next(url_for("letters.letter", letter_id=letter.id)))


@bp.route("/letters/<int:letter_id>/cancel", methods=["POST"])
@login_required
def cancel(letter_id):
    """Stop a letter that has not gone out yet."""
    letter = _letter_or_404(letter_id)
    if cancel_letter(letter):
        flash(_("The letter was cancelled."), "info")
    else:
        flash(_("This letter is already being sent or has been sent; it cannot be cancelled."), "error")
    return redirect(_safe_next(url_for("letters.letter", letter_id=letter.id)))


@bp.app_template_global()
def outcome_label(outcome):
    """An attempt's outcome in words."""
    return str(OUTCOME_LABELS.get(outcome, outcome))


@bp.app_template_global()
def recipient_label(status):
    """A recipient's status in words."""
    return str(RECIPIENT_LABELS.get(status, status))

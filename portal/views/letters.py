"""Letters: New letter, the Outbox, a letter's page with its history and replies, retry and cancel."""
import secrets
from functools import partial

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from peewee import JOIN

from portal.db import whole_number
from portal.htmx import render_htmx
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

bp = Blueprint("letters", __name__)

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
            )
        except LetterError as error:
            target = getattr(form, error.field, None) if error.field else None
            if target is not None and target.type == "HiddenField":  # a reply's thread ids: said above the form
                target = None
            (target.errors if target is not None else form.form_errors).append(str(error.message))
        else:
            flash(_("The letter is in the queue."), "success")
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


@bp.route("/outbox")
@login_required
def outbox():
    """Letters with their state, attempts, next attempt and failures; refreshes itself while any is in flight."""
    filters = _outbox_filters()
    size = current_app.config["PORTAL_PAGE_SIZE"]
    listing = paginate(_outbox_query(filters), request.args.get("page", 1, type=whole_number), size,
                       total=_outbox_query(filters, for_count=True).order_by().count())
    rows = listing.rows
    pending = any(letter.state in PENDING_STATES for letter in rows)
    options = {}
    if current_user.is_admin:
        options["mailboxes"] = list(Mailbox.select(Mailbox.id, Mailbox.address).order_by(Mailbox.address))
        options["employees"] = list(Employee.select(Employee.id, Employee.name).order_by(Employee.name))
    options["projects"] = list(Project.select(Project.id, Project.name).order_by(Project.name))
    args = {key: value for key, value in filters.items() if value}
    settled = nobody_left(letter.id for letter in rows if letter.can_retry)
    return render_htmx("letters/outbox.html", rows=rows, total=listing.total, page=listing.page, pages=listing.pages,
                       filters=filters, args=args, pending=pending, options=options, settled=settled,
                       fetch_problems=_fetch_problems(), now=utcnow(), states=STATES)


@bp.route("/letters/<int:letter_id>")
@login_required
def letter(letter_id):
    """One letter: its recipients, every attempt, and the replies received."""
    letter = _letter_or_404(letter_id)
    if letter.author_id == current_user.id and letter.state in ("failed", "uncertain") and not letter.failure_seen:
        Letter.update(failure_seen=True).where(Letter.id == letter.id).execute()
        from portal.notifications import mark_letter_seen  # the failure's notification is seen with it

        mark_letter_seen(current_user, letter.id)
    recipients = list(LetterRecipient.select().where(LetterRecipient.letter == letter.id).order_by(LetterRecipient.id))
    history = list(LetterAttempt.select().where(LetterAttempt.letter == letter.id).order_by(LetterAttempt.id))
    replies = list(Reply.select().where(Reply.letter == letter.id).order_by(Reply.date, Reply.id))
    settled = not any(r.status in ("pending", "deferred") for r in recipients)
    return render_htmx("letters/letter.html", letter=letter, recipients=recipients, history=history,
                       replies=replies, now=utcnow(), settled=settled)


@bp.route("/letters/<int:letter_id>/retry", methods=["POST"])
@login_required
def retry(letter_id):
    """Queue a failed, uncertain, deferred or cancelled letter again now."""
    letter = _letter_or_404(letter_id)
    if retry_letter(letter):
        wake_sender(current_app, letter)
        flash(_("The letter is in the queue again."), "success")
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

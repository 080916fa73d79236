"""Mailbox health: the admins' Health page, a mailbox's health panel (state, replies, deliverability), Fetch now."""
import datetime
import logging
from collections import Counter

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from peewee import JOIN, fn

from portal import deliverability
from portal import mailbox_health as health
from portal import mailboxes as service
from portal.access import admin_required
from portal.db import whole_number
from portal.forms.mailbox_health import HealthFilterForm
from portal.htmx import is_htmx, render_htmx
from portal.letters.worker import huey_for
from portal.models import Employee, Mailbox
from portal.pagination import paginate

log = logging.getLogger("portal.health")
DNS_AGAIN_AFTER = datetime.timedelta(minutes=1)  # "Check DNS now" asks again only after this
bp = Blueprint("mailbox_health", __name__)

STATE_LABELS = {health.WORKING: _l("Working"), health.WARNING: _l("Warning"),
                health.PAUSED_BY_PORTAL: _l("Paused by the portal"), health.PAUSED_BY_PERSON: _l("Paused by a person")}
STATE_BADGES = {health.WORKING: "badge-ok", health.WARNING: "badge-warn", health.PAUSED_BY_PORTAL: "badge-fail",
                health.PAUSED_BY_PERSON: "badge-warn"}


@bp.app_context_processor
def health_globals():
    """The words and colours of the health states, for the badge wherever a mailbox is listed."""
    return {"health_state_labels": STATE_LABELS, "health_state_badges": STATE_BADGES}


def _mailbox_or_404(mailbox_id):
    try:
        return service.mailbox_for(current_user, mailbox_id, manage=True)
    except service.MailboxNotFound:
        abort(404)


@bp.route("/admin/mail/health")
@admin_required
def index():
    """Account management → Health: every mailbox's state, checks, sends, incoming mail and deliverability."""
    filters = HealthFilterForm(request.args)
    query = (Mailbox.select(Mailbox, Employee).join(Employee, JOIN.LEFT_OUTER, on=(Mailbox.owner == Employee.id))
             .order_by(Mailbox.scope, fn.LOWER(Mailbox.address), Mailbox.id))
    if filters.address.data:
        query = query.where(Mailbox.address.contains(filters.address.data.lower()))
    if filters.scope.data in ("company", "employee"):
        query = query.where(Mailbox.scope == filters.scope.data)
    mailboxes = list(query)
    found = health.health_of(mailboxes)
    checklists = deliverability.kept_checklists(mailboxes)
    wanted = filters.state.data or ""
    if wanted == "attention":
        mailboxes = [m for m in mailboxes if found[m.id].state != health.WORKING]
    elif wanted in health.STATES:
        mailboxes = [m for m in mailboxes if found[m.id].state == wanted]
    if filters.deliverability.data == "problems":
        mailboxes = [m for m in mailboxes if checklists[m.id] is not None and not checklists[m.id].ok]
    waiting = health.waiting_letters()
    per_mailbox, per_problem = Counter(), Counter()
    for (mailbox_id, code), count in waiting.items():
        per_mailbox[mailbox_id] += count
        if code:
            per_problem[code] += count
    states = Counter(found[m.id].state for m in mailboxes)
    listing = paginate(mailboxes, request.args.get("page", 1, type=whole_number),
                       int(current_app.config.get("PORTAL_PAGE_SIZE") or 25))
    args = {key: value for key, value in request.args.items() if value and key != "page"}
    return render_htmx("health/index.html", filters=filters, mailboxes=listing.rows, page=listing.page,
                       pages=listing.pages, total=listing.total, health=found, checklists=checklists,
                       waiting=per_mailbox, per_problem=sorted(per_problem.items(), key=lambda item: -item[1]),
                       states=states, args=args, lang=_lang())


def _panel(mailbox, *, message=None, checklist=None):
    """The health panel of one mailbox: what the checks found, and its domain's DNS as last asked."""
    return render_htmx("health/panel.html", mailbox=mailbox, found=health.health(mailbox),
                       incoming=health.incoming_health(mailbox),
                       checklist=checklist or deliverability.kept_checklist(mailbox),
                       waiting=sum(health.waiting_letters([mailbox.id]).values()), message=message, lang=_lang())


def _lang():
    from flask_babel import get_locale

    return "ru" if str(get_locale()).startswith("ru") else "en"


@bp.route("/mailboxes/<int:mailbox_id>/health")
@login_required
def panel(mailbox_id):
    """A mailbox's health panel on its page: for its owner and admins."""
    return _panel(_mailbox_or_404(mailbox_id))


@bp.route("/mailboxes/<int:mailbox_id>/fetch-now", methods=["POST"])
@login_required
def fetch_now(mailbox_id):
    """Fetch the mailbox's replies now (at most once a minute per mailbox), for its owner and admins."""
    mailbox = _mailbox_or_404(mailbox_id)
    if not (mailbox.receive_replies and mailbox.has_incoming and mailbox.active):
        message = ("fail", _("This address does not receive replies, or it is paused."))
    else:
        again = health.ask_fetch(mailbox)
        if again is not None:
            message = ("warn", _("Replies were fetched a moment ago. Try again after %(time)s.",
                                 time=format_datetime(again, "HH:mm:ss")))
        else:
            try:
                huey_for(current_app).portal_tasks.fetch_now(mailbox.id)
                message = ("ok", _("Fetching replies now. New ones appear on the Replies page within a minute."))
            except Exception:  # the queue storage is down: the periodic fetch still comes
                log.exception("could not ask a worker to fetch the replies of mailbox %s", mailbox.id)
                message = ("fail", _("The worker could not be asked right now; replies are fetched every few "
                                     "minutes anyway."))
    if not is_htmx():
        flash(message[1], "success" if message[0] == "ok" else "error")
        return redirect(url_for("mailboxes.edit", mailbox_id=mailbox.id))
    return _panel(mailbox, message=message)


@bp.route("/mailboxes/<int:mailbox_id>/check-dns", methods=["POST"])
@login_required
def check_dns(mailbox_id):
    """Ask DNS about the mailbox's domain now (answers younger than a minute are reused), for its owner and admins."""
    mailbox = _mailbox_or_404(mailbox_id)
    checklist = deliverability.mailbox_checklist(mailbox, deliverability.configured_resolver(current_app.config),
                                                 kept_for=DNS_AGAIN_AFTER)
    if not is_htmx():
        return redirect(url_for("mailbox_health.panel", mailbox_id=mailbox.id))
    return _panel(mailbox, checklist=checklist)

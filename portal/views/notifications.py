"""The notification centre: a person's entries, newest first, marked read one by one or all at once; the bell."""
from flask import Blueprint, current_app, flash, g, redirect, request, url_for
from flask_babel import get_locale, gettext
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal.db import whole_number
from portal.access import admin_required
from portal.forms.notifications import preferences_form, system_mailbox_form
from portal.htmx import render_htmx
from portal.models import Notification
from portal.notifications import (KINDS, PAGE_SIZE, describe, link_of, mark_read, notifications_of, preferences,
                                  read_replies, set_preferences, unread_count)
from portal.pagination import paginate

bp = Blueprint("notifications", __name__)


@bp.app_context_processor
def notification_globals():
    """The bell's unread count: one query, made only when the navigation asks, and at most once a request."""

    def unread_notifications():
        if not current_user.is_authenticated:
            return 0
        if "unread_notifications" not in g:
            g.unread_notifications = unread_count(current_user.id)
        return g.unread_notifications

    def system_mailbox_address():
        from portal.portal_mail import system_mailbox

        mailbox = system_mailbox()
        return mailbox.address if mailbox is not None else ""

    return {"unread_notifications": unread_notifications, "system_mailbox_address": system_mailbox_address}


def entry_link(notification):
    """Where the entry's link leads, or None when what it was about is gone."""
    target = link_of(notification.target)
    return url_for(target[0], **target[1]) if target else None


def _page_number():
    try:
        return max(request.args.get("page", 1, type=whole_number), 1)
    except ValueError:
        return 1


@bp.route("/notifications")
@login_required
def index():
    """The person's notifications, newest first, unread marked."""
    listing = paginate(notifications_of(current_user), _page_number(), PAGE_SIZE)
    lang = str(get_locale())
    entries = [(entry, describe(entry, gettext, lang)) for entry in listing.rows]
    return render_htmx("notifications/index.html", partial="notifications/partial/index.html", listing=listing,
                       entries=entries)


def _own_entry(notification_id):
    return Notification.get_or_none((Notification.id == notification_id)
                                    & (Notification.recipient == current_user.id))


@bp.route("/notifications/<int:notification_id>", endpoint="follow")
@login_required
def follow_notification(notification_id):
    """Go where the entry says to act, marking nothing: a GET (a prefetcher, an <img src>) changes no state."""
    entry = _own_entry(notification_id)
    return redirect((entry_link(entry) if entry else None) or url_for("notifications.index"))


@bp.route("/notifications/<int:notification_id>", methods=["POST"])
@login_required
def open_notification(notification_id):
    """Mark the entry read (and the reply it announces) and go where it says to act; one that is gone (or never
    was one's own): the list."""
    entry = _own_entry(notification_id)
    if entry is None:
        return redirect(url_for("notifications.index"), code=303)
    mark_read(current_user, [entry.id])
    kind, _colon, number = entry.target.partition(":")
    if kind == "reply" and number.isdigit():
        read_replies(current_user, [int(number)])
    return redirect(entry_link(entry) or url_for("notifications.index"), code=303)


@bp.route("/notifications/<int:notification_id>/read", methods=["POST"])
@login_required
def read(notification_id):
    """Mark one entry read."""
    mark_read(current_user, [notification_id])
    return redirect(url_for("notifications.index", page=request.args.get("page", type=int) or None))


@bp.route("/notifications/read", methods=["POST"])
@login_required
def read_all():
    """Mark every entry read."""
    mark_read(current_user)
    return redirect(url_for("notifications.index"))


def preferences_context(employee):
    """What My profile's Notifications section needs: the form and whether e-mail can go out at all."""
    from portal.portal_mail import system_mailbox

    return {"notification_form": preferences_form(preferences(employee), formdata=None),
            "notification_mail_ready": system_mailbox() is not None}


@bp.route("/notifications/preferences", methods=["POST"], endpoint="preferences")
@login_required
def preferences_save():
    """Store which kinds also come by e-mail."""
    form = preferences_form(preferences(current_user))
    if not form.validate_on_submit():  # only a form not made by the page gets here: nothing is saved
        flash(_("Choose “In the portal only” or “Also by e-mail” for every kind; nothing was changed."), "error")
        return redirect(url_for("profile.edit") + "#notifications")
    set_preferences(current_user, {kind for kind in KINDS if form[kind].data == "email"})
    flash(_("Your notification choices are saved."), "success")
    return redirect(url_for("profile.edit") + "#notifications")


def system_mailbox_context(mailboxes):
    """What Outgoing messages' section on the portal's own mail needs, given the company mailboxes listed."""
    from portal.portal_mail import system_mailbox

    chosen = system_mailbox()
    return {"system_mailbox": chosen, "system_mailbox_form": system_mailbox_form(mailboxes, chosen, formdata=None),
            "portal_base_url": current_app.config.get("PORTAL_BASE_URL")}


@bp.route("/admin/mail/system-mailbox", methods=["POST"], endpoint="system_mailbox")
@admin_required
def system_mailbox_save():
    """Choose the company mailbox the portal's own mail leaves from, or none."""
    from portal.mailboxes import company_mailboxes
    from portal.portal_mail import set_system_mailbox

    mailboxes = list(company_mailboxes())
    form = system_mailbox_form(mailboxes, None)
    if not form.validate_on_submit():  # an address that is not a company one (or gone): nothing changes
        flash(_("Choose one of the company addresses listed; nothing was changed."), "error")
        return redirect(url_for("mailboxes.outgoing") + "#system-mailbox")
    chosen = next((m for m in mailboxes if str(m.id) == form.mailbox.data), None)
    set_system_mailbox(chosen, actor=current_user, ip=request.remote_addr or "")
    flash(_("The portal's own mail now leaves from %(address)s.", address=chosen.address) if chosen
          else _("The portal has no system mailbox now: notifications stay in the portal."), "success")
    return redirect(url_for("mailboxes.outgoing") + "#system-mailbox")

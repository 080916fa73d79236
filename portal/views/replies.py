"""Replies: every reply to the person's letters in one list, newest first, what is new marked."""
from flask import Blueprint, abort, redirect, request, url_for
from flask_login import current_user, login_required

from portal.db import whole_number
from portal.htmx import is_htmx, nav_counts, render_htmx
from portal.models import Letter, Mailbox, Project, Reply
from portal.notifications import read_replies
from portal.pagination import paginate

bp = Blueprint("replies", __name__)


def _visible():
    """Replies to the letters this person may see (an admin: every letter)."""
    return Reply.select(Reply, Letter).join(Letter).where(
        Letter.id.in_(Letter.visible_to(current_user).select(Letter.id)))


def _unread(query):
    """Unread means not yet opened by the letter's author; an admin reading along marks nothing."""
    return query.where(Reply.read_at.is_null() & (Letter.author == current_user.id))


def _chosen(name):
    try:
        return request.args.get(name, type=whole_number)
    except ValueError:
        return None


@bp.app_context_processor
def reply_globals():
    """The count behind the Replies badge (computed only when the navigation asks)."""

    def unread_replies():
        if not current_user.is_authenticated:
            return 0
        return _unread(Reply.select().join(Letter)).count()

    return {"unread_replies": unread_replies}


@bp.route("/replies")
@login_required
def index():
    """Replies, newest first; filter by project and by the mailbox they arrived in."""
    project_id, mailbox_id = _chosen("project"), _chosen("mailbox")
    query = _visible()
    if project_id:
        query = query.where(Letter.project == project_id)
    if mailbox_id:
        query = query.where(Reply.mailbox == mailbox_id)
    query = query.order_by(Reply.fetched_at.desc(), Reply.id.desc())
    listing = paginate(query, request.args.get("page", 1, type=lambda v: max(whole_number(v), 1)), 25)
    projects = Project.select().where(Project.id.in_(_visible().select(Letter.project))).order_by(Project.name)
    mailboxes = Mailbox.select().where(Mailbox.id.in_(_visible().select(Reply.mailbox))).order_by(Mailbox.address)
    return render_htmx("replies/index.html", partial="replies/partial/index.html", listing=listing,
                       projects=list(projects), mailboxes=list(mailboxes), project_id=project_id,
                       mailbox_id=mailbox_id)


@bp.route("/replies/<int:reply_id>")
@login_required
def open_reply(reply_id):
    """The reply inside its letter, marking nothing: a GET (a link in an e-mail, a prefetcher) changes no state."""
    reply = _visible().where(Reply.id == reply_id).first() or abort(404)
    return redirect(url_for("letters.letter", letter_id=reply.letter_id, _anchor=f"reply-{reply.id}"))


@bp.route("/replies/<int:reply_id>", methods=["POST"])
@login_required
def read_reply(reply_id):
    """Open a reply from the list: the letter's author opening it marks it read."""
    reply = _visible().where(Reply.id == reply_id).first() or abort(404)
    read_replies(current_user, [reply.id])
    return redirect(url_for("letters.letter", letter_id=reply.letter_id, _anchor=f"reply-{reply.id}"), code=303)


@bp.route("/letters/<int:letter_id>/replies/read", methods=["POST"])
@login_required
def read_shown(letter_id):
    """The letter's page was shown to its author: the replies it showed (the form's `reply` ids) are read. The page
    posts this once it is on screen, or its no-script button does; the GET that brought it (a link in a notification
    e-mail, a bookmark, a prefetcher) marks nothing. A reply that came later is not among the ids, so it stays new."""
    letter = Letter.visible_to(current_user).where(Letter.id == letter_id).first() or abort(404)
    asked = request.form.getlist("reply", type=whole_number)
    shown = [reply_id for (reply_id,) in Reply.select(Reply.id).where(
        (Reply.letter == letter.id) & Reply.id.in_(asked)).tuples()]
    if shown:
        read_replies(current_user, shown)
    if is_htmx():
        return nav_counts()
    return redirect(url_for("letters.letter", letter_id=letter.id), code=303)

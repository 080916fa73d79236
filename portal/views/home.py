"""The start page after sign-in: which address your letters leave from, and where your work is."""
from flask import Blueprint
from flask_login import current_user, login_required

from portal import password_ending
from portal.htmx import render_htmx
from portal.models import Project
from portal.sender import sender_table

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    """Your sender in every active project (one grid row, constant queries) and the sections you may use."""
    projects = list(Project.active_projects())
    senders = sender_table([current_user], projects).rows()[0][1] if projects else []
    # Admins see the mailboxes whose provider stops (or stopped) taking their password, before letters wait.
    endings = password_ending.ending_summary(password_ending.today()) if current_user.is_admin else []
    return render_htmx("home/index.html", senders=list(zip(projects, senders)), password_endings=endings)

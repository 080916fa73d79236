"""The start page after sign-in: where each person's work is."""
from flask import Blueprint
from flask_login import login_required

from portal.htmx import render_htmx

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    """The sections the signed-in person may use."""
    return render_htmx("home/index.html")

"""Opening a signed-in session, the one way the password form and single sign-on both end."""
from flask import current_app, redirect, request, session, url_for
from flask_login import login_user

from portal.security import local_target
from portal.sessions import open_session


def sign_in_as(employee, *, remember, target):
    """Open a new session for the employee (password or single sign-on) and go to `target` or the overview."""
    language = session.get("language")
    session.clear()  # a new session on sign-in
    if language and not employee.language:
        session["language"] = language
    open_session(employee, days=current_app.config["PORTAL_REMEMBER_DAYS"])
    login_user(employee, remember=remember)
    # `next` is a path inside the portal; behind a prefix (nginx's /mail/) it is put back in front.
    target = local_target(target)
    return redirect(request.script_root + target if target else url_for("home.index"))

"""Signing in the person the reverse proxy vouches for (PORTAL_TRUSTED_USER_HEADER), before every request."""
from flask import Blueprint, current_app, request, session
from flask_login import current_user, login_user, logout_user

from portal.models import Employee, normalize_email
from portal.trusted_header import TrustedHeader

bp = Blueprint("trusted_header", __name__)
EXTENSION = "portal.trusted_header"


@bp.record_once
def _read_settings(state):
    state.app.extensions[EXTENSION] = TrustedHeader.from_mapping(state.app.config)


@bp.before_app_request
def sign_in_from_proxy():
    """The proxy's person is the signed-in one; unknown or deactivated people get the sign-in page."""
    settings = current_app.extensions[EXTENSION]
    address = settings.user(request.environ)
    if address is None:
        return
    if current_user.is_authenticated and current_user.email == normalize_email(address):
        return
    if current_user.is_authenticated:
        logout_user()  # the proxy now vouches for someone else: never keep the previous person
    employee = Employee.by_email(address)
    if employee is not None and employee.active:
        session.clear()
        login_user(employee)

"""Which language a page speaks: the employee's choice, else the sign-in switcher, else the browser."""
from flask import current_app, has_request_context, request, session
from flask_login import current_user

from portal.models.people import LANGUAGES

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}


def select_locale():
    """The employee's language, else the one picked before sign-in, else Accept-Language, else default."""
    if not has_request_context():  # the command line speaks the default language
        return current_app.config.get("PORTAL_DEFAULT_LANGUAGE", "en")
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(LANGUAGES)
    return best or current_app.config.get("PORTAL_DEFAULT_LANGUAGE", "en")

"""Error pages: plain, translated, and without internals."""
import logging
from collections import namedtuple
from urllib.parse import urlsplit

from flask import request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from portal.api.openapi import PREFIX as API_PREFIX
from portal.htmx import render_htmx, request_is_partial

log = logging.getLogger("portal.errors")
REFERRER_MISMATCH = "The referrer does not match the host."  # Flask-WTF's reason, with HTTPS only

# An htmx request's error goes to the notice in base.html, not into the request's own target (htmx
# swaps no error answer there; static/js/portal.js swaps this one and shows the notice). Nothing of
# the request's own element applies to it: not its hx-select, not its hx-push-url.
PROBLEM_HEADERS = {"HX-Retarget": "#request-problem-text", "HX-Reswap": "innerHTML", "HX-Reselect": "unset",
                   "HX-Push-Url": "false"}


FormLimit = namedtuple("FormLimit", "kind value")
WHOLE_BODY, ONE_FIELD, PARTS = "whole body", "one field", "parts"


def refused_form_limit(config, content_length):
    """The limit a refused form went over, as FormLimit(kind, value).

    Werkzeug raises the same RequestEntityTooLarge, with the same description, for all three, so the request's
    declared length tells them apart: over MAX_CONTENT_LENGTH (or no length: a streamed body, cut at that limit)
    is the whole body's; else over MAX_FORM_MEMORY_SIZE is one text field's (a field that long needs a body that
    long); else it can only have been the number of parts (MAX_FORM_PARTS). A body between the two sizes that has
    too many parts is said as a long field: a person fills no form of a thousand fields, so it is not theirs.
    """
    whole = config.get("MAX_CONTENT_LENGTH")
    if whole is not None and (content_length is None or content_length > whole):
        return FormLimit(WHOLE_BODY, whole)
    field = config.get("MAX_FORM_MEMORY_SIZE")
    if field is not None and (content_length is None or content_length > field):
        return FormLimit(ONE_FIELD, field)
    return FormLimit(PARTS, config.get("MAX_FORM_PARTS"))


def _api_message(limit):
    """The JSON error's message for a form over `limit` (the API speaks English)."""
    if limit.kind == PARTS:
        return f"The form had more than {limit.value} parts: nothing was saved."
    if limit.kind == ONE_FIELD:
        return f"A form field was larger than {limit.value // 1024} KB: nothing was saved."
    return f"The body was larger than {limit.value // 1024} KB: nothing was saved."


def _page_words(limit):
    """(title, message) of the page or notice for a form over `limit`, in the reader's language."""
    if limit.kind == PARTS:
        return _("The form had too many parts"), _(
            "The form had more than %(count)s fields and files: nothing was saved. Go back and send fewer at once.",
            count=limit.value)
    if limit.kind == ONE_FIELD:
        return _("A field was too long"), _(
            "One field of the form was longer than %(size)s KB: nothing was saved. Go back, shorten what you typed "
            "or pasted into it, and send it again.", size=limit.value // 1024)
    return _("The form was too large"), _(
        "The form was larger than %(size)s KB in all: nothing was saved. Go back, send a smaller file or less "
        "text, and try again.", size=limit.value // 1024)


def init_app(app):
    """Answer 400, 403, 404, 413, 429 and 500 with the portal's own page, or for htmx with a notice."""

    def page(status, title, message, error=None):
        body, headers = render_htmx("errors.html", partial="partial/problem.html",
                                    status=status, title=title, message=message)
        if request_is_partial():
            headers.update(PROBLEM_HEADERS)
        retry_after = dict(error.get_headers()).get("Retry-After") if error is not None else None
        if retry_after is not None:  # a rate limit says when to come back
            headers["Retry-After"] = retry_after
        return body, status, headers

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        # Logged every time: a proxy that rewrites Host refuses every form, and the log must say why.
        log.warning("refused a form: %s (%s %s, Host %s, Referer %s)", error.description, request.method,
                    request.path, request.host, request.referrer or "-")
        if error.description == REFERRER_MISMATCH:
            return page(400, _("The address does not match"),
                        _("The page was opened as %(referrer)s but the portal sees itself as %(host)s. "
                          "Tell the administrator: the proxy in front must pass the Host header as the "
                          "browser sent it.", referrer=urlsplit(request.referrer or "").netloc or "-",
                          host=request.host))
        return page(400, _("The form has expired"), _("Reload the page and try again."))

    @app.errorhandler(400)
    def bad_request(error):
        return page(400, _("Bad request"), _("The request could not be understood."))

    @app.errorhandler(403)
    def forbidden(error):
        return page(403, _("Not allowed"), _("You may not do this."))

    @app.errorhandler(404)
    def not_found(error):
        return page(404, _("Not found"), _("There is nothing here, or you may not see it."))

    @app.errorhandler(413)
    def too_large(error):
        limit = refused_form_limit(app.config, request.content_length)
        # A view that takes an upload answers a body over the limit itself, beside its file field: the file
        # is what makes a body that large. A long text field or too many parts is not the file's fault.
        own_answer = getattr(app.view_functions.get(request.endpoint), "too_large", None)
        if own_answer is not None and limit.kind == WHOLE_BODY:
            return own_answer()
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            from portal.api.views import error_response

            return error_response(413, "too_large", _api_message(limit))
        return page(413, *_page_words(limit))

    @app.errorhandler(429)
    def too_many(error):
        return page(429, _("Too many attempts"), _("Wait a minute and try again."), error)

    @app.errorhandler(500)
    def server_error(error):
        return page(500, _("Something went wrong"), _("The error was logged. Try again later."))

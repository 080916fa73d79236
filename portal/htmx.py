"""The one module that knows about htmx: whether a request wants a fragment, and rendering it."""
import posixpath

from flask import render_template, request
from htmx_flask import Htmx

htmx = Htmx()


def request_is_partial():
    """True for an htmx request that wants a fragment: not boosted, not a history restore."""
    headers = getattr(request, "htmx", None)
    return bool(headers) and not headers.boosted and not headers.history_restore_request


def partial_of(template):
    """The fragment a page template includes: `a/b.html` -> `a/partial/b.html`."""
    folder, name = posixpath.split(template)
    return posixpath.join(folder, "partial", name)


def render_htmx(template, *, partial=None, **context):
    """Render the page, or only its fragment for an htmx request; always `Vary: HX-Request`."""
    if request_is_partial():
        body = render_template(partial or partial_of(template), **context)
    else:
        body = render_template(template, **context)
    return body, {"Vary": "HX-Request"}


def is_htmx():
    """True for any htmx request (boosted ones included), e.g. to answer with HX-Redirect."""
    return bool(getattr(request, "htmx", None))


def nav_counts():
    """The answer to an htmx POST that changed a count the navigation shows (a failed letter seen, replies read):
    the counts alone, swapped out of band into the page on screen."""
    return render_template("partial/nav_counts_oob.html")

"""Error pages: plain, translated, and without internals."""
from flask import render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError


def init_app(app):
    """Answer 400, 403, 404, 413, 429 and 500 with the portal's own page."""

    def page(status, title, message):
        return render_template("errors.html", status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(error):
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
        return page(413, _("Too large"), _("The upload is larger than the portal accepts."))

    @app.errorhandler(429)
    def too_many(error):
        return page(429, _("Too many attempts"), _("Wait a minute and try again."))

    @app.errorhandler(500)
    def server_error(error):
        return page(500, _("Something went wrong"), _("The error was logged. Try again later."))

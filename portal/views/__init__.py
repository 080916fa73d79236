"""Blueprints: thin views that translate HTTP into calls on the core and back."""


def register_blueprints(app):
    """Attach every blueprint of the portal."""
    from portal.views import auth, home

    for module in (auth, home):
        app.register_blueprint(module.bp)

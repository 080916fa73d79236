"""Blueprints: thin views that translate HTTP into calls on the core and back."""


def register_blueprints(app):
    """Attach every blueprint of the portal."""
    from portal.views import auth, home
    from portal.views import mailboxes
    from portal.views import employees, profile, projects
    from portal.views import contacts, letters
    from portal.views import api_tokens
    from portal.api import views as api

    for module in (auth, home, mailboxes, employees, projects, profile, api_tokens, api, contacts, letters):
        app.register_blueprint(module.bp)
    from portal.views import discovery  # Find settings on the mailbox form
    app.register_blueprint(discovery.bp)
    from portal.views import directory  # Account management → Directory
    app.register_blueprint(directory.bp)
    from portal.views import trusted_header  # sign-in vouched for by the reverse proxy
    app.register_blueprint(trusted_header.bp)
    from portal.views import health  # /healthz, /readyz and the admins' worker banner
    app.register_blueprint(health.bp)
    from portal.views import invitations  # the page an invitation link opens
    app.register_blueprint(invitations.bp)
    from portal.views import replies  # every reply to one's letters, and the unread badge
    app.register_blueprint(replies.bp)
    from portal.views import sso  # "Sign in with <company>" (OpenID Connect) and Account management → Sign-in
    app.register_blueprint(sso.bp)
    from portal.views import mailbox_health  # Account management → Health, a mailbox's health panel, Fetch now
    app.register_blueprint(mailbox_health.bp)
    from portal.views import notifications  # the notification centre and the bell
    app.register_blueprint(notifications.bp)
    from portal.views import webhooks  # My profile → Webhooks, and each employee's for admins
    app.register_blueprint(webhooks.bp)
    from portal.views import oauth  # Sign-in providers, and mailboxes that sign in with the provider
    app.register_blueprint(oauth.bp)

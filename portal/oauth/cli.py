"""``portal oauth-app set|list``: register the portal's app at a sign-in provider from the command line."""
import os

import click
from flask.cli import with_appcontext

from portal.db import database

from .providers import PROVIDERS


@click.group("oauth-app")
def oauth_app_command():
    """Register the portal's app at a sign-in provider (Microsoft, Google, Yandex, the company's own server)."""


@oauth_app_command.command("set")
@click.argument("provider", type=click.Choice(sorted(PROVIDERS)))
@click.option("--client-id", required=True, help="The app's client (application) ID at the provider.")
@click.option("--client-secret-env", metavar="VAR",
              help="Name of the environment variable holding the client secret (never on the command line); "
                   "left out, the stored secret is kept.")
@click.option("--tenant", default="", help="Microsoft: common, organizations, consumers or a tenant ID.")
@click.option("--discovery-url", default="", help="company: the server's .../.well-known/openid-configuration.")
@click.option("--sasl", default="", help="company: XOAUTH2 (default) or OAUTHBEARER.")
@click.option("--scopes", default="", help="company: the scopes to ask for, space-separated.")
@with_appcontext
def set_command(provider, client_id, client_secret_env, tenant, discovery_url, sasl, scopes):
    """Register or change the app of PROVIDER."""
    from .apps import AppInvalid, save_app

    secret = None
    if client_secret_env:
        secret = os.environ.get(client_secret_env)
        if not secret:
            raise click.ClickException(f"The environment variable {client_secret_env} is not set or empty.")
    try:
        with database.connection_context():
            save_app(provider, client_id=client_id, client_secret=secret, tenant=tenant,
                     discovery_url=discovery_url, sasl=sasl, scopes=scopes)
    except AppInvalid as error:
        raise click.ClickException("; ".join(f"{name}: {message}" for name, message in error.errors.items()))
    click.echo(f"The {PROVIDERS[provider].name} app is registered (client ID {client_id}).")


@oauth_app_command.command("list")
@with_appcontext
def list_command():
    """Show the registered apps (never their secrets)."""
    from .apps import registered_apps

    with database.connection_context():
        apps = registered_apps()
    if not apps:
        click.echo("No sign-in provider is registered.")
    for key, provider in PROVIDERS.items():
        app = apps.get(key)
        if app is None:
            continue
        extra = {"microsoft": f" tenant={app.tenant}",
                 "company": f" discovery={app.discovery_url} sasl={app.sasl} scopes={app.scopes!r}"}.get(key, "")
        secret = "set" if app.has_client_secret else "MISSING"
        click.echo(f"{key}: client_id={app.client_id} secret={secret}{extra}")

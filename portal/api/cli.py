"""`portal create-token`: a personal API token for an employee, printed once."""
import sys

import click
from flask.cli import with_appcontext

from portal.api.tokens import TokenInvalid, create_token
from portal.db import database
from portal.models import Employee


@click.command("create-token")
@click.option("--email", required=True, help="The employee the token acts as.")
@click.option("--name", default="command line", show_default=True, help="What the token is for.")
@with_appcontext
def create_token_command(email, name):
    """Create a personal API token and print it (it is shown only this once)."""
    with database.connection_context():
        owner = Employee.by_email(email)
        if owner is None or not owner.active:
            click.echo(f"Error: no active employee with the e-mail {email}.", err=True)
            sys.exit(1)
        try:
            row, token = create_token(owner, name)
        except TokenInvalid as error:
            click.echo(f"Error: {error.field}: {error.message}", err=True)
            sys.exit(1)
    click.echo(f"Created token {row.name!r} for {owner.email}. It is shown only now:", err=True)
    click.echo(token)

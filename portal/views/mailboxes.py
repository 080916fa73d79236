"""External addresses: Outgoing messages, employees' and my addresses, the add/edit form, Who sends from what, audit."""
from flask import Blueprint

from portal import secret_box

bp = Blueprint("mailboxes", __name__)


@bp.record_once
def _install_secret_box(state):
    """Every app that serves these pages decrypts mailbox secrets with its own configured keys."""
    app = state.app
    box = secret_box.SecretBox.from_config(app.config, app.instance_path)
    app.extensions["portal_secret_box"] = secret_box.install(box)

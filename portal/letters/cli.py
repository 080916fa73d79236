"""Commands: `portal worker` (a huey consumer), `portal send-letters` and `portal fetch-replies` (one pass each)."""
import logging

import click
from flask import current_app
from flask.cli import with_appcontext

from portal.health import Heartbeat
from portal.letters.queue import QueuePolicy, process_due_letters
from portal.letters.replies import fetch_replies
from portal.letters.worker import huey_for, make_consumer, run_consumer
from portal.mail.settings import MailConfig


@click.command("worker")
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
@with_appcontext
def worker_command(workers):
    """Run the queue's consumer: sends letters, retries them, and fetches replies on schedule."""
    if not logging.getLogger().handlers:  # what the worker and huey do goes to stderr (journald under systemd)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    huey = huey_for(current_app)
    consumer = make_consumer(huey, workers, flush_send_locks=True)
    click.echo(f"Worker started ({workers} threads, queue: {type(huey).__name__}).")
    heartbeat = Heartbeat().start()  # /readyz and the admins' banner see this worker while it runs
    try:
        run_consumer(consumer)
    finally:
        heartbeat.stop()
    click.echo("Worker stopped.")


@click.command("send-letters")
@with_appcontext
def send_letters_command():
    """Send every letter that is due now, once, and say what happened."""
    config = current_app.config
    report = process_due_letters(MailConfig.from_mapping(config), QueuePolicy.from_mapping(config))
    outcomes = ", ".join(f"{state}: {count}" for state, count in sorted(report.outcomes.items()))
    click.echo(f"Letters: {outcomes or 'none due'}.")


@click.command("fetch-replies")
@with_appcontext
def fetch_replies_command():
    """Fetch replies once from every mailbox that receives them."""
    reports = fetch_replies(MailConfig.from_mapping(current_app.config))
    if not reports:
        click.echo("No mailbox receives replies.")
    failed = False
    for report in reports:
        if report.ok:
            click.echo(f"{report.address}: {report.new_messages} new, {len(report.replies)} replies.")
        else:
            failed = True
            click.echo(f"{report.address}: {report.problem.title('en')} ({report.problem.server_reply})", err=True)
    if failed:
        raise SystemExit(1)


COMMANDS = (worker_command, send_letters_command, fetch_replies_command)

"""The command-line face of the mail engine: `portal check-account` and `portal presets`."""
from __future__ import annotations

import json
import os

import click
from flask import current_app
from flask.cli import with_appcontext

from .check import check_account
from .presets import PRESETS, ProviderPreset, preset_for_address
from .settings import INCOMING_PROTOCOLS, SECURITY_MODES, IncomingSettings, MailboxSettings, MailConfig, ServerSettings

LANGS = ("ru", "en")


def _default_lang() -> str:
    lang = current_app.config.get("PORTAL_DEFAULT_LANGUAGE", "en")
    return lang if lang in LANGS else "en"


@click.command("check-account")
@click.option("--address", required=True, help="The mailbox's address (also MAIL FROM and RCPT TO).")
@click.option("--display-name", default="", help="Name shown beside the address in a test letter.")
@click.option("--smtp-host", required=True)
@click.option("--smtp-port", required=True, type=click.IntRange(1, 65535))
@click.option("--smtp-security", required=True, type=click.Choice(SECURITY_MODES))
@click.option("--username", help="Login for every server; defaults to the address.")
@click.option("--password-env", metavar="VAR",
              help="Name of the environment variable holding the password. Without it, no sign-in is tried.")
@click.option("--incoming", type=click.Choice(INCOMING_PROTOCOLS), help="Also check this incoming protocol.")
@click.option("--incoming-host")
@click.option("--incoming-port", type=click.IntRange(1, 65535))
@click.option("--incoming-security", type=click.Choice(SECURITY_MODES))
@click.option("--send-test-letter", is_flag=True, help="Send a real letter to the mailbox's own address.")
@click.option("--lang", type=click.Choice(LANGS), help="Language of the explanations.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@with_appcontext
def check_account_command(address, display_name, smtp_host, smtp_port, smtp_security, username, password_env,
                          incoming, incoming_host, incoming_port, incoming_security, send_test_letter, lang,
                          as_json):
    """Check a mailbox against its real servers; exit 0 if it passed, 1 if not, 2 for bad arguments."""
    lang = lang or _default_lang()
    password = ""
    if password_env:
        if password_env not in os.environ:
            raise click.BadParameter(f"the environment variable {password_env} is not set",
                                     param_hint="--password-env")
        password = os.environ[password_env]
    elif username:
        raise click.UsageError("--username needs --password-env (the password is never given on the command line)")
    login = (username or address) if password_env else ""
    incoming_options = (incoming_host, incoming_port, incoming_security)
    if incoming and None in incoming_options:
        raise click.UsageError("--incoming needs --incoming-host, --incoming-port and --incoming-security")
    if not incoming and any(option is not None for option in incoming_options):
        raise click.UsageError("--incoming-host, --incoming-port and --incoming-security need --incoming pop3|imap")
    try:
        config = MailConfig.from_mapping(current_app.config)
        incoming_settings = IncomingSettings(incoming, ServerSettings(
            incoming_host, incoming_port, incoming_security, login, password)) if incoming else None
        settings = MailboxSettings(address, display_name, ServerSettings(
            smtp_host, smtp_port, smtp_security, login, password), incoming_settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None

    result = check_account(settings, config, send_test_letter=send_test_letter)

    if as_json:
        click.echo(json.dumps(result.to_dict(lang), ensure_ascii=False))
    else:
        _print_result(result, lang)
    click.get_current_context().exit(0 if result.ok else 1)


def _print_result(result, lang: str) -> None:
    width = max((len(stage.label(lang)) for stage in result.stages), default=0)
    for stage in result.stages:
        mark = "ok  " if stage.ok else "FAIL"
        click.echo(f"{mark} {stage.label(lang):<{width}} {stage.ms:>6} ms  {stage.detail}")
    if result.problem:
        problem = result.problem
        click.echo("")
        click.echo(f"{problem.title(lang)} [{problem.code}]")
        if problem.server_reply:
            click.echo(("Ответ сервера: " if lang == "ru" else "Server reply: ") + problem.server_reply)
        click.echo(problem.advice(lang))
    click.echo("")
    if lang == "ru":
        click.echo("Проверка пройдена." if result.ok else "Проверка не пройдена.")
    else:
        click.echo("The mailbox passed." if result.ok else "The mailbox did not pass.")


@click.command("presets")
@click.option("--for", "address", metavar="ADDRESS", help="Print the preset picked for this address.")
@click.option("--lang", type=click.Choice(LANGS), help="Language of the advice.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@with_appcontext
def presets_command(address, lang, as_json):
    """List the provider presets, or print the one picked for an address."""
    lang = lang or _default_lang()
    if address is not None:
        if "@" not in address:
            raise click.BadParameter("an address looks like name@domain", param_hint="--for")
        preset = preset_for_address(address, mx_lookup=bool(current_app.config.get("PORTAL_MAIL_PROVIDER_MX_LOOKUP",
                                                                                   True)))
        if as_json:
            click.echo(json.dumps(preset.to_dict(lang), ensure_ascii=False))
        else:
            _print_preset(preset, lang, detailed=True)
        return
    if as_json:
        click.echo(json.dumps([preset.to_dict(lang) for preset in PRESETS], ensure_ascii=False))
        return
    for preset in PRESETS:
        _print_preset(preset, lang, detailed=False)


def _print_preset(preset: ProviderPreset, lang: str, *, detailed: bool) -> None:
    servers = "  ".join(f"{name.upper()} {server.host}:{server.port} {server.security}"
                        for name, server in (("smtp", preset.smtp), ("pop3", preset.pop3), ("imap", preset.imap))
                        if server)
    click.echo(f"{preset.key:<13} {preset.name:<32} {servers}".rstrip())
    if detailed:
        if preset.domains:
            click.echo(f"  domains: {', '.join(preset.domains)}")
        click.echo(f"  login: {'whole address' if preset.login_format == 'address' else 'part before @'}; "
                   f"app password with 2FA: {'yes' if preset.app_password_required_with_2fa else 'no'}; "
                   f"OAuth: {'yes' if preset.oauth_offered else 'no'}")
        for label, url in (("POP3/IMAP access", preset.incoming_help_url),
                           ("app passwords", preset.app_password_help_url)):
            if url:
                click.echo(f"  {label}: {url}")
        click.echo(f"  {preset.advice(lang)}")


@click.command("discover")
@click.argument("address")
@click.option("--lang", type=click.Choice(LANGS), help="Language of the explanations.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@with_appcontext
def discover_command(address, lang, as_json):
    """Find a mailbox's servers from its ADDRESS (presets, autoconfig, MX, SRV, a guess); no password is sent.

    Exits 0 when an outgoing server was found, 1 when nothing was, 2 for a bad address.
    """
    from .discovery import discover, dns_resolver

    lang = lang or _default_lang()
    config = current_app.config
    try:
        resolver = dns_resolver(config.get("PORTAL_MAIL_DNS_SERVERS") or "")
        mail_config = MailConfig.from_mapping(config)
    except ValueError as error:
        raise click.UsageError(f"PORTAL_MAIL_DNS_SERVERS or PORTAL_MAIL_*: {error}") from None
    try:
        found = discover(address, mail_config, resolver=resolver,
                         mx_lookup=bool(config.get("PORTAL_MAIL_PROVIDER_MX_LOOKUP", True)))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="ADDRESS") from None
    if as_json:
        click.echo(json.dumps(found.to_dict(lang), ensure_ascii=False))
    else:
        for server in found.servers:
            click.echo(f"{server.protocol.upper():<5} {server.host}:{server.port} {server.security}  "
                       f"login {server.username}")
        if found.found:
            click.echo(("Найдено " if lang == "ru" else "Found ") + found.source_text(lang))
        else:
            click.echo("Настройки нигде не найдены." if lang == "ru" else "No settings were found anywhere.")
        click.echo("")
        for step in found.trail:
            detail = f" ({step.detail})" if step.detail else ""
            click.echo(f"  {step.source:<10} {step.where}: {step.text(lang)}{detail}")
    click.get_current_context().exit(0 if found.found else 1)

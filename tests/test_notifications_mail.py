"""The portal's own mail, through the system mailbox and the letters queue to a real SMTP server (aiosmtpd):
notifications in the recipient's language with text, HTML and a footer; invitations; the 15-minute digest."""
import datetime
import email
import email.policy
import re

import pytest

from portal.models import Letter, Notification, utcnow
from portal.notifications import notify, set_preferences
from portal.portal_mail import DIGEST_WINDOW, mail_notifications, send_digests, set_system_mailbox, system_mailbox
from tests.fixtures.letters import passed_test

BASE = "https://portal.example.com"


@pytest.fixture
def config(config):
    config["PORTAL_BASE_URL"] = BASE
    return config


@pytest.fixture
def portal_mailbox(make_mailbox, smtp_server, admin):
    """A company mailbox on the test SMTP server, chosen as the system mailbox."""
    mailbox = passed_test(make_mailbox(address="portal@example.com", display_name="The Portal", smtp_host="localhost",
                                       smtp_port=smtp_server.port, smtp_security="starttls",
                                       smtp_username=smtp_server.username, password=smtp_server.password))
    set_system_mailbox(mailbox, actor=admin)
    return mailbox


def received_by(smtp_server, address):
    """The messages the SMTP server accepted for this address, parsed."""
    return [email.message_from_bytes(m.content, policy=email.policy.default)
            for m in smtp_server.messages if address in m.rcpt_tos]


def parts(message):
    return tuple(message.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html"))


@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_failed_letter_reaches_its_author_in_the_portal_and_by_e_mail_in_their_language(
        language, portal_mailbox, sending_mailbox, write_letter, run_queue, smtp_server, employee):
    employee.language = language
    employee.save()
    smtp_server.refuse("nobody@example.com")
    letter = write_letter(sending_mailbox, to="nobody@example.com", subject="Offer for ACME")
    run_queue()  # the letter fails; its notification e-mail is queued
    run_queue()  # and goes out through the system mailbox

    [entry] = Notification.select()
    assert entry.mail_state == "mailed" and entry.mail_letter_id is not None
    [message] = received_by(smtp_server, employee.email)
    text, html = parts(message)
    assert message["From"].addresses[0].addr_spec == "portal@example.com"
    assert message["To"].addresses[0].addr_spec == employee.email
    assert f"{BASE}/letters/{letter.id}" in text and f'href="{BASE}/letters/{letter.id}"' in html
    assert f"{BASE}/profile#notifications" in text.split("\n-- \n")[1]
    if language == "en":
        assert message["Subject"] == "A letter of yours failed: Offer for ACME"
        assert "Your letter “Offer for ACME” could not be sent: The recipient address does not exist." in text
        assert "You get this e-mail because you chose to hear about “A letter of yours failed”" in text
    else:
        assert message["Subject"] == "Ваше письмо не отправлено: Offer for ACME"
        assert "Ваше письмо «Offer for ACME» не отправлено: " in text
        assert "Вы получили это письмо, потому что выбрали получать уведомления «Ваше письмо не отправлено»" in text
        assert "Вы получили это письмо" in html
    # The portal's own letter is no letter of the employee's: not in their Outbox, nothing to see there.
    mail = Letter.get_by_id(entry.mail_letter_id)
    assert mail.origin == "portal" and mail.state == "sent" and mail.project_id is None
    assert [row.id for row in Letter.visible_to(employee)] == [letter.id]
    assert Letter.needing_attention(employee) == 1


def test_a_reply_reaches_its_author_by_e_mail_when_they_chose_it(
        portal_mailbox, replying_mailbox, write_letter, run_queue, dovecot, mail_user, mail_config, smtp_server,
        employee):
    from portal.letters.replies import fetch_replies
    from tests.fixtures.letters import reply_to

    set_preferences(employee, {"reply_received"})
    mailbox = replying_mailbox("imap")
    letter = write_letter(mailbox, subject="Proposal")
    run_queue()
    dovecot.deliver(mail_user.address, reply_to(Letter.get_by_id(letter.id), text="Yes."))
    fetch_replies(mail_config)
    run_queue()

    [message] = received_by(smtp_server, employee.email)
    text, _ = parts(message)
    assert message["Subject"] == "A reply to your letter: Proposal"
    assert "Friend <friend@example.com> replied to your letter “Proposal”." in text
    assert re.search(rf"{BASE}/replies/\d+", text)


def test_without_a_system_mailbox_notifications_stay_in_the_portal(
        sending_mailbox, write_letter, run_queue, smtp_server, employee):
    smtp_server.refuse("nobody@example.com")
    write_letter(sending_mailbox, to="nobody@example.com")
    run_queue()
    run_queue()
    [entry] = Notification.select()
    assert entry.mail_state == "" and system_mailbox() is None
    assert received_by(smtp_server, employee.email) == []


def test_one_e_mail_per_kind_per_15_minutes_and_the_rest_in_the_next_digest(
        portal_mailbox, employee, run_queue, smtp_server):
    start = utcnow()
    notify(employee, "letter_failed", about="First", detail="recipient_unknown", now=start)
    notify(employee, "letter_failed", about="Second", detail="recipient_unknown",
           now=start + datetime.timedelta(minutes=1))
    notify(employee, "mailbox_paused", about="sales@example.com", detail="auth_failed",
           now=start + datetime.timedelta(minutes=2))  # another kind: its own e-mail at once
    notify(employee, "letter_failed", about="Third", detail="recipient_unknown",
           now=start + datetime.timedelta(minutes=5))
    assert send_digests(start + datetime.timedelta(minutes=14)) == []  # still inside the window
    [digest] = send_digests(start + DIGEST_WINDOW)
    assert send_digests(start + DIGEST_WINDOW) == []  # a second worker finds nothing left
    run_queue()

    subjects = sorted(m["Subject"] for m in received_by(smtp_server, employee.email))
    assert subjects == ["A letter of yours failed: 2 notifications", "A letter of yours failed: First",
                        "An address was paused: sales@example.com"]
    [summary] = [m for m in received_by(smtp_server, employee.email) if "2 notifications" in m["Subject"]]
    text, _ = parts(summary)
    assert "Since the last e-mail of this kind:" in text
    assert text.index("“Second”") < text.index("“Third”") and "“First”" not in text
    assert Notification.select().where(Notification.mail_state == "due").count() == 0
    assert digest.origin == "portal"


def test_entries_already_mailed_by_another_worker_are_not_mailed_again(portal_mailbox, employee):
    set_preferences(employee, set())
    entry = notify(employee, "letter_failed", about="Offer", detail="recipient_unknown")
    Notification.update(mail_state="due").where(Notification.id == entry.id).execute()
    first = mail_notifications(employee.id, "letter_failed")
    assert first is not None
    Notification.update(mail_state="due", mailed_at=None).where(Notification.id == entry.id).execute()
    # What a second worker sees after the first marked them: nothing "due" left to take under its feet.
    Notification.update(mail_state="mailed").where(Notification.id == entry.id).execute()
    assert mail_notifications(employee.id, "letter_failed") is None
    assert Letter.select().where(Letter.origin == "portal").count() == 1


def test_an_invitation_goes_by_e_mail_and_its_link_sets_the_password(
        portal_mailbox, client, auth, admin, make_employee, run_queue, smtp_server):
    imported = make_employee(password="", language="ru")
    imported.password_hash = ""
    imported.save()
    auth.login(admin)
    answer = client.post(f"/admin/employees/{imported.id}/invitation", headers={"HX-Request": "true"})
    assert "The invitation is on its way to" in answer.get_data(as_text=True)
    assert "set-password/" not in answer.get_data(as_text=True)  # the link goes to the employee only
    run_queue()

    [message] = received_by(smtp_server, imported.email)
    text, html = parts(message)
    assert message["Subject"] == "Задайте пароль для портала"
    assert "Вы получили это письмо, потому что администратор портала пригласил вас." in text
    link = re.search(r"http://localhost/set-password/\S+", text).group(0)
    assert link in html
    assert client.get(link.removeprefix("http://localhost")).status_code == 200


def test_admins_choose_the_system_mailbox_among_company_addresses(client, auth, admin, make_mailbox, employee):
    company = make_mailbox(address="portal@example.com")
    own = make_mailbox(employee, address="erik@example.com")
    auth.login(admin)
    page = client.get("/admin/mail/outgoing").get_data(as_text=True)
    assert "No system mailbox: notifications appear in the portal only" in page
    assert f'value="{company.id}"' in page and f'value="{own.id}"' not in page

    assert client.post("/admin/mail/system-mailbox", data={"mailbox": str(own.id)}).status_code == 302
    assert system_mailbox() is None
    assert "Choose one of the company addresses listed" in client.get("/admin/mail/outgoing").get_data(as_text=True)
    assert client.post("/admin/mail/system-mailbox", data={"mailbox": str(company.id)}).status_code == 302
    assert system_mailbox().id == company.id
    assert "leave from portal@example.com" in client.get("/admin/mail/outgoing").get_data(as_text=True)
    client.post("/admin/mail/system-mailbox", data={"mailbox": ""})
    assert system_mailbox() is None


def test_only_admins_choose_the_system_mailbox(client, auth, employee, make_mailbox):
    company = make_mailbox(address="portal@example.com")
    auth.login(employee)
    assert client.post("/admin/mail/system-mailbox", data={"mailbox": str(company.id)}).status_code in (403, 404)
    assert system_mailbox() is None


def test_the_digest_task_sends_what_waited_and_one_worker_at_a_time(app, portal_mailbox, employee, tmp_path):
    from portal.letters.worker import make_huey
    from portal.portal_mail import DIGEST_LOCK

    huey = make_huey(app.config, str(tmp_path / "queue"))
    task = huey.portal_tasks.notification_digest
    long_ago = utcnow() - DIGEST_WINDOW - datetime.timedelta(minutes=1)
    notify(employee, "letter_failed", about="First", detail="recipient_unknown", now=long_ago)  # mailed then
    notify(employee, "letter_failed", about="Second", detail="recipient_unknown")  # waits: the window was open
    Notification.update(mailed_at=long_ago).where(Notification.mail_state == "mailed").execute()
    Notification.update(mail_state="due").where(Notification.about == "Second").execute()

    with huey.lock_task(DIGEST_LOCK):  # another worker is sending digests
        assert task.call_local() == 0
    assert Notification.get(Notification.about == "Second").mail_state == "due"
    assert task.call_local() == 1
    assert Notification.get(Notification.about == "Second").mail_state == "mailed"
    assert task.call_local() == 0


def test_the_admins_outbox_names_the_portals_own_mail_and_the_employees_does_not_list_it(
        portal_mailbox, client, auth, admin, employee):
    from tests.conftest import page_text

    notify(employee, "letter_failed", about="Offer", detail="recipient_unknown")
    auth.login(admin)
    assert f"the portal's own mail to {employee.name}" in page_text(client.get("/outbox"))
    auth.logout()
    auth.login(employee)
    assert "A letter of yours failed" not in page_text(client.get("/outbox"))


def test_a_deactivated_person_gets_no_e_mail_and_their_entries_leave_the_digest(portal_mailbox, employee):
    from portal.people import set_employee_active

    notify(employee, "letter_failed", about="First", detail="recipient_unknown")
    waiting = notify(employee, "letter_failed", about="Second", detail="recipient_unknown")
    set_employee_active(employee, False)
    assert send_digests(utcnow() + DIGEST_WINDOW) == []
    assert Notification.get_by_id(waiting.id).mail_state == ""


def test_a_long_subject_is_shortened_in_the_notification_e_mail(portal_mailbox, employee):
    entry = notify(employee, "letter_failed", about="Offer " + "x" * 880, detail="recipient_unknown")
    letter = Letter.get_by_id(Notification.get_by_id(entry.id).mail_letter_id)
    assert letter.subject.startswith("A letter of yours failed: Offer xxx") and letter.subject.endswith("…")
    assert len(letter.subject) == len("A letter of yours failed: ") + 120


def test_links_in_the_portals_mail_follow_the_base_url_with_its_prefix(app):
    from portal.portal_mail import Links

    assert Links("https://intranet.example.com/mail/", app.url_map).url("letters.letter", {"letter_id": 3}) == (
        "https://intranet.example.com/mail/letters/3")
    assert Links("", app.url_map).url("notifications.index") == "/notifications"  # no address known: a path


def test_three_refused_sign_ins_pause_the_mailbox_and_its_owner_hears_in_the_portal_and_by_e_mail(
        make_mailbox, make_smtp_server, sending_mailbox, write_letter, run_queue, smtp_server, admin, employee):
    """The provider's password changed: the queue pauses the mailbox; its owner gets both entries in the portal,
    and the pause by e-mail through the system mailbox on another server."""
    portal_server = make_smtp_server("starttls", username="portal@example.com")
    system = passed_test(make_mailbox(address="portal@example.com", smtp_host="localhost",
                                      smtp_port=portal_server.port, smtp_security="starttls",
                                      smtp_username=portal_server.username, password=portal_server.password))
    set_system_mailbox(system, actor=admin)
    smtp_server.password = "changed-at-the-provider"
    write_letter(sending_mailbox, subject="Offer")
    for _ in range(3):
        run_queue()
        run_queue.later(hours=1)
    run_queue()

    # The first refusal already warns (the health checks' "needs attention"); the third pauses.
    assert sorted(n.kind for n in Notification.select().where(Notification.recipient == employee.id)) == [
        "letter_waiting", "mailbox_needs_attention", "mailbox_paused"]
    # Waiting letters are told in the portal only, unless the person chose e-mail for them too.
    mailed = {message["Subject"]: message for message in received_by(portal_server, employee.email)}
    assert len(mailed) == 2
    paused = mailed[f"An address was paused: {sending_mailbox.address}"]
    assert paused["Subject"] == f"An address was paused: {sending_mailbox.address}"
    text, _ = parts(paused)
    assert f"The portal paused the address {sending_mailbox.address}: " in text
    assert f"{BASE}/mailboxes/{sending_mailbox.id}/edit" in text

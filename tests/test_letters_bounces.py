"""Bounces fetched back from the sending mailbox (a real Dovecot): an RFC 3464 report and a plain-text bounce mark the
recipients they name "bounced", on the letter, the Outbox and the API."""
import email
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from portal.letters.bounces import looks_like_bounce, read_bounce
from portal.letters.replies import fetch_replies
from portal.models import Letter, LetterRecipient, Reply
from tests.conftest import page_text
from tests.fixtures.letters import unrelated_message


def delivery_report(letter, failed, *, action="failed"):
    """A delivery status notification in RFC 3464's shape, as Postfix writes one: a human part, the
    message/delivery-status part (a per-message block, then one block per recipient) and the original letter."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.example.com (Mail Delivery System)"
    report["To"] = letter.from_address
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = "Sun, 06 Dec 2026 10:00:00 +0000"
    report["Message-ID"] = f"<dsn-{letter.id}-{action}@mx.example.com>"
    report.attach(MIMEText("I'm sorry to have to inform you that your message could not be delivered to one or "
                           "more recipients.\n"))
    status = Message()
    status.set_type("message/delivery-status")
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; mx.example.com"
    per_message["Arrival-Date"] = "Sun, 06 Dec 2026 09:59:58 +0000"
    blocks = [per_message]
    for address, code, words in failed:
        block = Message()
        block["Final-Recipient"] = f"rfc822; {address}"
        block["Original-Recipient"] = f"rfc822;{address}"
        block["Action"] = action
        block["Status"] = code
        block["Remote-MTA"] = "dns; mx2.example.com"
        block["Diagnostic-Code"] = f"smtp; {words}"
        blocks.append(block)
    status.set_payload(blocks)
    report.attach(status)
    report.attach(MIMEMessage(email.message_from_string(Letter.get_by_id(letter.id).raw_message)))
    return report.as_bytes()


def plain_bounce(letter, address):
    """A bounce in Exim's plain-text shape: the failed address and the server's words, then the letter quoted."""
    original = Letter.get_by_id(letter.id).raw_message.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    return (f"From: Mail Delivery System <Mailer-Daemon@mx.example.org>\r\nTo: {letter.from_address}\r\n"
            f"Subject: Mail delivery failed: returning message to sender\r\n"
            f"Message-ID: <exim-{letter.id}@mx.example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            f"  {address}\n    host mx2.example.org [192.0.2.7]\n"
            "    SMTP error from remote mail server after RCPT TO:<x>:\n"
            "    550 5.2.1 The email account that you tried to reach is disabled\n\n"
            "------ This is a copy of the message, including all the headers. ------\n\n"
            f"{original}\n").replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_a_delivery_report_marks_the_recipient_it_names_bounced(protocol, replying_mailbox, write_letter, run_queue,
                                                                dovecot, mail_user, mail_config):
    mailbox = replying_mailbox(protocol)
    letter = write_letter(mailbox, to="gone@example.com, friend@example.com")
    other = write_letter(mailbox, to="gone@example.com")
    run_queue()
    dovecot.deliver(mail_user.address, unrelated_message(1))
    dovecot.deliver(mail_user.address, delivery_report(letter, [
        ("gone@example.com", "5.1.1", "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown")]))

    [report] = fetch_replies(mail_config)

    assert report.ok and report.bounces == [letter.id]
    answers = {r.address: r for r in LetterRecipient.select().where(LetterRecipient.letter == letter.id)}
    assert answers["gone@example.com"].status == "bounced"
    assert answers["gone@example.com"].server_reply == (
        "5.1.1 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown")
    assert answers["friend@example.com"].status == "accepted"
    assert Letter.get_by_id(letter.id).bounced == 1 and Letter.get_by_id(other.id).bounced == 0
    assert Reply.select().count() == 0  # a bounce is not a reply


def test_a_plain_text_bounce_quoting_the_original_headers_is_matched_too(replying_mailbox, write_letter, run_queue,
                                                                         dovecot, mail_user, mail_config):
    mailbox = replying_mailbox("imap")
    letter = write_letter(mailbox, to="off@example.org", cc="friend@example.com")
    run_queue()
    dovecot.deliver(mail_user.address, plain_bounce(letter, "off@example.org"))

    [report] = fetch_replies(mail_config)

    assert report.bounces == [letter.id]
    answers = {r.address: r for r in LetterRecipient.select().where(LetterRecipient.letter == letter.id)}
    assert answers["off@example.org"].status == "bounced"
    assert answers["off@example.org"].server_reply.startswith("5.2.1 ")
    assert "account that you tried to reach is disabled" in answers["off@example.org"].server_reply
    assert answers["friend@example.com"].status == "accepted"  # named only in the quoted headers


def test_a_delay_notice_is_not_a_bounce(sending_mailbox, write_letter, run_queue):
    letter = write_letter(sending_mailbox, to="slow@example.com")
    run_queue()
    raw = delivery_report(letter, [("slow@example.com", "4.4.1", "451 4.4.1 try later")], action="delayed")
    assert looks_like_bounce(email.message_from_bytes(raw))
    assert read_bounce(raw) is None


def test_a_bounce_is_shown_on_the_letter_the_outbox_and_in_the_api(replying_mailbox, write_letter, run_queue, dovecot,
                                                                   mail_user, mail_config, as_employee, api_employee):
    mailbox = replying_mailbox("imap")
    letter = write_letter(mailbox, subject="Offer", to="gone@example.com")
    run_queue()
    bounce = delivery_report(letter, [("gone@example.com", "5.1.1", "550 5.1.1 no such user")])
    dovecot.deliver(mail_user.address, bounce)
    fetch_replies(mail_config)

    page = page_text(as_employee.get(f"/letters/{letter.id}"))
    assert "bounced" in page and "5.1.1 550 5.1.1 no such user" in page
    assert "server returned the letter" in page  # the catalogue's words for it
    assert "1 bounced" in page_text(as_employee.get("/outbox"))
    shown = api_employee.get(f"/letters/{letter.id}").get_json()
    assert shown["bounced"] == 1
    assert shown["recipients"][0]["status"] == "bounced"
    assert shown["recipients"][0]["server_reply"] == "5.1.1 550 5.1.1 no such user"

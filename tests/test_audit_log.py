"""The audit log speaks the reader's language: events, fields and problems in words, the raw code in a tooltip."""
import pytest

from portal.models import AuditEvent
from tests.conftest import page_text


@pytest.fixture
def logged(admin, make_mailbox):
    """One change of the password and the access switch, one failed test, one Default that moved."""
    box = make_mailbox(address="sales@example.com")
    AuditEvent.create(mailbox=box, address=box.address, actor=admin, action="changed", ip="127.0.0.1",
                      changed_fields='["smtp_password", "access_everyone", "incoming_host"]')
    AuditEvent.create(mailbox=box, address=box.address, actor=admin, action="test_failed", ip="127.0.0.1",
                      detail="incoming_auth_failed")
    AuditEvent.create(mailbox=box, address=box.address, actor=admin, action="changed", ip="127.0.0.1",
                      changed_fields='["is_default"]', detail="replaced by support@example.com")
    return box


def test_fields_and_problems_are_words_in_english(as_admin, logged):
    html = as_admin.get("/admin/mail/audit").get_data(as_text=True)
    text = page_text(as_admin.get("/admin/mail/audit"))
    assert "Outgoing password" in text and "Everyone may use it" in text and "Incoming server name" in text
    assert "Default moved to support@example.com" in text
    for code in ("smtp_password", "access_everyone", "incoming_auth_failed", "replaced by"):
        assert code not in text  # only in the tooltip
    assert 'title="smtp_password"' in html and 'title="incoming_auth_failed"' in html


def test_fields_and_problems_are_words_in_russian(as_admin, admin, logged):
    admin.language = "ru"
    admin.save()
    text = page_text(as_admin.get("/admin/mail/audit"))
    assert "Пароль исходящей почты" in text and "Сервер входящей почты" in text
    assert "проверка не пройдена" in text.lower()
    assert "Адрес по умолчанию теперь support@example.com" in text
    for english in ("Outgoing password", "Everyone may use it", "incoming_auth_failed", "changed"):
        assert english not in text

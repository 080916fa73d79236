"""Russian and English: every string the portal shows is translated, and the right language is chosen."""
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from tests.conftest import page_text

ROOT = Path(__file__).resolve().parent.parent
# What `make messages` extracts with: Babel's own keywords (N_ among them), the two lazy ones and Nn_.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "Nn_": (1, 2)}
METHODS = [("portal/**.py", "python"), ("templates/**.html", "jinja2")]


def source_messages():
    """Every msgid the code and templates mark for translation, with where it is."""
    found = {}
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map=METHODS, keywords=KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def russian_catalogue():
    with (ROOT / "portal/translations/ru/LC_MESSAGES/messages.po").open("rb") as handle:
        return read_po(handle, locale="ru")


def test_every_string_is_translated_into_russian():
    catalogue = russian_catalogue()
    missing = []
    for msgid, where in source_messages().items():
        message = catalogue.get(msgid)
        strings = message.string if message else None
        if isinstance(strings, tuple):
            ok = all(strings)
        else:
            ok = bool(strings)
        if not message or not ok or message.fuzzy:
            missing.append(f"{where}: {msgid!r}")
    assert not missing, "Untranslated into Russian (run `make messages`, then translate):\n" + "\n".join(missing)


def test_refreshing_the_catalogues_keeps_every_translation():
    """`make messages` keeps only what the code marks: a msgid translated where it is shown (a message table
    looked up by code) must be marked with N_, or its translation is dropped and the page turns English."""
    marked = set(source_messages())
    unmarked = [message.id for message in russian_catalogue()
                if message.id and (message.id[0] if isinstance(message.id, tuple) else message.id) not in marked]
    assert not unmarked, "In the catalogue but marked nowhere (mark it with N_, or remove it):\n" + "\n".join(
        map(repr, unmarked))


PLACEHOLDER = re.compile(r"\{(\w+)\}|%\((\w+)\)[sd]")


def test_a_translation_keeps_every_name_and_number_the_english_shows():
    """"For a single letter {employee} may also pick" said "an employee" in Russian: the name was lost. Every
    placeholder of a msgid is in each of its translation's forms."""
    lost = []
    for message in russian_catalogue():
        if not message.id:
            continue
        english = message.id[0] if isinstance(message.id, tuple) else message.id
        wanted = {name for pair in PLACEHOLDER.findall(english) for name in pair if name}
        for translation in (message.string if isinstance(message.string, tuple) else (message.string,)):
            shown = {name for pair in PLACEHOLDER.findall(translation) for name in pair if name}
            if wanted - shown:
                lost.append(f"{english!r}: {sorted(wanted - shown)} missing from {translation!r}")
    assert not lost, "\n".join(lost)


def test_language_follows_the_browser_before_sign_in(client):
    assert "Вход" in page_text(client.get("/sign-in", headers={"Accept-Language": "ru-RU,ru;q=0.9"}))
    assert "Sign in" in page_text(client.get("/sign-in", headers={"Accept-Language": "de-DE"}))


def test_switcher_shows_the_language_in_use(client):
    html = client.get("/sign-in", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert '<option selected value="ru">' in html or '<option value="ru" selected>' in html


def test_switcher_on_sign_in_page_changes_language(client):
    response = client.post("/language", data={"language": "ru"}, follow_redirects=True)
    assert '<html lang="ru">' in response.get_data(as_text=True)
    assert "Вход" in page_text(response)


@pytest.mark.parametrize("language, greeting", [("ru", "Здравствуйте"), ("en", "Hello")])
def test_employees_language_beats_the_browser(client, auth, make_employee, language, greeting):
    person = make_employee(language=language)
    auth.login(person)
    other = "en" if language == "ru" else "ru"
    assert greeting in page_text(client.get("/", headers={"Accept-Language": other}))

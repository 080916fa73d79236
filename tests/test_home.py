"""The overview page: the admin's cards say what each section is in the reader's language."""
from tests.conftest import page_text


def test_russian_admin_card_uses_the_matrix_own_words(as_admin, admin):
    admin.language = "ru"
    admin.save()
    text = page_text(as_admin.get("/"))
    assert "«Конфликт» и «Никто»" in text
    assert "равенства" not in text and "пробелы" not in text

"""The portal's Babel catalogues read without Flask: the sender rule and the mail engine speak in the API, the
command line and the worker too, where no request chose a language."""
from functools import lru_cache
from pathlib import Path

from babel.support import Translations


def N_(text):
    """Marks a text for Babel's extraction; it is translated where it is shown (``translate``)."""
    return text


@lru_cache(maxsize=None)
def _catalogue(lang):
    return Translations.load(str(Path(__file__).parent / "translations"), [lang])


def translate(text, lang):
    """``text`` (an English msgid) in ``lang``, from the catalogues; English when it has no translation."""
    return _catalogue(lang).gettext(text)

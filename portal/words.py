"""The portal's Babel catalogues read without Flask: the sender rule and the mail engine speak in the API, the
command line and the worker too, where no request chose a language."""
from functools import lru_cache
from pathlib import Path

from babel.support import Translations


def N_(text):
    """Marks a text for Babel's extraction; it is translated where it is shown (``translate``)."""
    return text


def Nn_(singular, plural):
    """Marks a text that depends on a number (``make messages`` extracts it as ``Nn_:1,2``).

    ``translate`` picks the language's own form for the number: Russian has three.
    """
    return singular, plural


@lru_cache(maxsize=None)
def catalogue(lang):
    """The portal's catalogue for a language (English texts for English)."""
    return Translations.load(str(Path(__file__).parent / "translations"), [lang])


def translate(text, lang, count=None):
    """``text`` (an English msgid, or an ``Nn_`` pair with its ``count``) in ``lang``, from the catalogues;
    English when it has no translation."""
    if isinstance(text, tuple):
        return catalogue(lang).ngettext(*text, count)
    return catalogue(lang).gettext(text)

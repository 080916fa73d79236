"""What every single-line field obeys, for the forms and the Flask-free services alike."""
import re

from flask_babel import lazy_gettext as _l

# Line breaks, NUL and other control characters, and Unicode line/paragraph separators:
# none may reach a header or a single-line field.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")

LINE_MAX = 255  # the length of a name, an address or an id kept in a single-line column


def single_line(value, name: str, errors: dict, *, required: bool = False, limit: int = LINE_MAX) -> str:
    """``value`` stripped, as one line; a problem with it goes into ``errors[name]`` (in the reader's language)."""
    value = "" if value is None else str(value).strip()
    if CONTROL_CHARACTERS.search(value):
        errors[name] = _l("Use a single line without control characters.")
    elif required and not value:
        errors[name] = _l("This field is required.")
    elif len(value) > limit:
        errors[name] = _l("At most %(max)d characters.", max=limit)
    return value

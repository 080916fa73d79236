"""What every single-line field obeys, for the forms and the Flask-free services alike."""
import re

# Line breaks, NUL and other control characters, and Unicode line/paragraph separators:
# none may reach a header or a single-line field.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")

"""Fill translations into a catalogue: `python scripts/po_fill.py ru < mapping.json`.

The mapping is a JSON object {msgid: msgstr}; for plural entries give a list of forms.
Entries not named are left as they are; the untranslated ones left are listed at the end.
"""
import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

CATALOGUES = Path(__file__).resolve().parent.parent / "portal" / "translations"


def fill(language, mapping):
    """Write the mapping into the language's catalogue; return the msgids still untranslated."""
    path = CATALOGUES / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        if key in mapping:
            value = mapping[key]
            message.string = tuple(value) if isinstance(message.id, tuple) else value
            message.flags.discard("fuzzy")
    with path.open("wb") as handle:
        write_po(handle, catalog, width=76)  # the width `pybabel update` writes, so neither rewraps the other
    return [
        message.id for message in catalog
        if message.id and not (all(message.string) if isinstance(message.string, tuple) else message.string)
    ]


if __name__ == "__main__":
    left = fill(sys.argv[1], json.load(sys.stdin))
    for msgid in left:
        print("untranslated:", msgid)

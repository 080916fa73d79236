"""Reading an uploaded CSV file, and the per-row report every import gives."""
import csv
import io
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l


@dataclass
class ImportRow:
    line: int
    email: str
    outcome: str  # created | updated | refused
    reason: str = ""
    field: str = ""  # the column a refusal is about, if one


@dataclass
class ImportReport:
    rows: list = field(default_factory=list)
    error: str = ""

    @property
    def ok(self):
        return not self.error and not any(row.outcome == "refused" for row in self.rows)

    def count(self, outcome):
        return sum(1 for row in self.rows if row.outcome == outcome)


def csv_reader(data, report):
    """A csv reader over uploaded bytes or text, or None with `report.error` saying why.

    UTF-8 with or without a byte-order mark; commas, semicolons (what Excel writes in Russian
    locales) or tabs between columns.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            report.error = str(_l("The file is not UTF-8 text. Save it as CSV (UTF-8) and try again."))
            return None
    sample = data[:2048]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    return csv.reader(io.StringIO(data), dialect)

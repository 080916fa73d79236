"""Reading an uploaded CSV file within its limits, the per-row report every import gives, and batched writes."""
import csv
import io
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

from portal.db import database

IMPORT_MAX_BYTES = 4 * 1024 * 1024  # PORTAL_IMPORT_MAX_BYTES: one import file
IMPORT_MAX_ROWS = 10_000  # PORTAL_IMPORT_MAX_ROWS: lines one import may hold
IMPORT_BATCH = 500  # rows written per transaction, so other writers get in between


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


def too_large_message(max_bytes):
    """What is said beside the file field when a file is over the limit."""
    megabytes = f"{max_bytes / (1024 * 1024):g}"
    return str(_l("The file is larger than %(size)s MB. Split it into smaller files.", size=megabytes))


def read_table(data, report, *, columns, required, header_error, max_bytes=IMPORT_MAX_BYTES,
               max_rows=IMPORT_MAX_ROWS):
    """(header, [(line number, values)]) of a CSV file whose first line names its columns.

    Or None with `report.error` saying why: too large, not UTF-8, a first line naming other
    columns than `columns` (all of `required` among them), more than `max_rows` lines, not CSV.
    Blank lines are skipped. Reading stops at the first line past the limit.
    """
    if len(data) > max_bytes:
        report.error = too_large_message(max_bytes)
        return None
    reader = csv_reader(data, report)
    if reader is None:
        return None
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if any(column not in header for column in required) or any(column not in columns for column in header) \
                or len(set(header)) != len(header):
            report.error = str(header_error)
            return None
        rows = []
        for values in reader:
            if not values or not any(value.strip() for value in values):
                continue
            if len(rows) == max_rows:
                report.error = str(_l("The file has more than %(max)d lines. Split it into files of at most "
                                      "%(max)d lines.", max=max_rows))
                return None
            rows.append((reader.line_num, values))
    except csv.Error as error:
        report.error = str(_l("The file is not valid CSV: %(error)s", error=str(error)))
        return None
    return header, rows


def write_in_batches(items, write, *, size=IMPORT_BATCH):
    """Call `write(item)` for every item, `size` to a transaction.

    A large import in one transaction held SQLite's write lock for minutes: other people's
    saves and the letters worker failed with "database is locked". Between batches they get in.
    The rows were all checked before the first batch, so an import still lands whole or, when
    checking refuses a line, not at all.
    """
    items = list(items)
    for start in range(0, len(items), size):
        with database.atomic():
            for item in items[start:start + size]:
                write(item)

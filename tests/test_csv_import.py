"""Reading an import file within its limits, without pages."""
from portal.csv_import import ImportReport, read_table

COLUMNS = ("name", "email")


def _read(data, **limits):
    report = ImportReport()
    table = read_table(data, report, columns=COLUMNS, required=("email",), header_error="bad header", **limits)
    return table, report.error


def test_exactly_the_row_limit_is_read_and_blank_lines_do_not_count(app):
    data = "email\n" + "a@example.com\n\n ,\n" * 3
    (header, rows), error = _read(data.encode(), max_rows=3)
    assert header == ["email"] and len(rows) == 3 and not error


def test_one_row_past_the_limit_refuses_the_file(app):
    table, error = _read(("email\n" + "a@example.com\n" * 4).encode(), max_rows=3)
    assert table is None and error == "The file has more than 3 lines. Split it into files of at most 3 lines."


def test_a_file_over_the_byte_limit_is_not_parsed(app):
    table, error = _read(b"email\n" + b"\xff" * 2048, max_bytes=1024)
    assert table is None and error.startswith("The file is larger than")


def test_the_header_must_name_known_columns_with_the_required_ones(app):
    assert _read(b"name\nx\n")[1] == "bad header"
    assert _read(b"email,phone\nx,1\n")[1] == "bad header"
    assert _read(b"email,email\nx,y\n")[1] == "bad header"

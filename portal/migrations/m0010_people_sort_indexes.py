"""Indexes the employee list sorts by, so a page of 10,000 employees is read in order, not sorted whole."""

INDEXES = {
    "employee_name_sort": "LOWER(name), id",
    "employee_department_sort": "LOWER(department), id",
    "employee_position_sort": "LOWER(position), id",
    "employee_role_sort": "role, LOWER(name), id",
}


def upgrade(db, migrator):
    for name, columns in INDEXES.items():
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON employee ({columns})")

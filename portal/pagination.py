"""One page of a list: the rows, how many there are in all, and which page of how many."""
from dataclasses import dataclass


@dataclass
class Page:
    rows: list
    total: int
    page: int
    size: int

    @property
    def pages(self):
        return max(1, -(-self.total // self.size))


def paginate(query, page, size, total=None):
    """One page of a peewee query (or a list), the page number clamped to the pages there are.

    Two queries for a peewee query: the count (without its ORDER BY, which counting needs not),
    unless the caller already knows the `total`, and the page itself.
    """
    if total is None:
        total = len(query) if isinstance(query, list) else query.order_by().count()
    page = min(max(page or 1, 1), max(1, -(-total // size)))
    if isinstance(query, list):
        rows = query[(page - 1) * size:page * size]
    else:
        rows = list(query.paginate(page, size))
    return Page(rows, total, page, size)

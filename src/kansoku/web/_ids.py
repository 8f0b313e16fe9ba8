"""The `{name:id}` path convertor of kansoku's routes: a database id, 1 to 18 digits.

Starlette's `int` convertor takes any number of digits, and a number past 2**63 makes the database
driver raise (SQLite: OverflowError), so `/api/alerts/silences/99999999999999999999/expire` was a
500. An id the store cannot hold names no row: with this convertor the route does not match and
the answer is a 404, the same as for any other id that names nothing.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

__all__ = ["IdConvertor"]


class IdConvertor(Convertor[int]):
    """1 to 18 digits (always below 2**63) as an int."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        """The id as an int."""
        return int(value)

    def to_string(self, value: int) -> str:
        """The id in a URL."""
        return str(value)


register_url_convertor("id", IdConvertor())

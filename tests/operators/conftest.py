"""Fixtures of the operator tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url_for(request):
    """A function giving a fresh ledger URL: a SQLite file, or a schema of the test PostgreSQL."""
    if request.param == "sqlite":
        yield lambda tmp_path: f"sqlite:///{tmp_path}/ledger.db"
        return
    from tests.support.databases import drop_pg_schema, new_pg_schema

    server = request.getfixturevalue("pg_url")
    schemas: list[str] = []

    def make(_tmp_path):
        schema, url = new_pg_schema(server)
        schemas.append(schema)
        return url

    yield make
    for schema in schemas:
        drop_pg_schema(server, schema)

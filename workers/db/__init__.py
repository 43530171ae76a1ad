"""Storage: SQLAlchemy tables, the engine, the repository functions stages persist through, the dedup
index and the Alembic migrations.

May import `stages`, `core` and `schemas`; never `runtime`, `ingest`, `ops` or `cli`.
"""

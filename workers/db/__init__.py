"""Storage: SQLAlchemy tables, the engine, and the repository functions stages persist through."""

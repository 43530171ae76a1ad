"""Alembic environment: the URL comes from the caller (`newsflow db upgrade`) or the settings."""

from alembic import context

from workers.db.engine import get_engine
from workers.db.models import Base
from workers.core.settings import get_settings

config = context.config
url = config.attributes.get("url") or get_settings().database_url

# Unbounded: a migration may run longer than a task's statement timeout.
with get_engine(url, bounded=False).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

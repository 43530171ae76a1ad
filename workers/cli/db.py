"""Database schema commands: `db upgrade`."""

from typing import Annotated

import typer

from workers.cli.base import DbOpt, app, note, settings_for

db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    db: DbOpt = None, revision: Annotated[str, typer.Option(help="Target revision.")] = "head"
) -> None:
    """Create or migrate the database schema (Alembic); safe to run again."""
    from workers.db.engine import upgrade

    settings = settings_for(db)
    upgrade(settings.database_url, revision)
    note(f"database at {revision}")

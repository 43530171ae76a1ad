"""MkDocs hook: the reference pages are generated from the code at build time, so they cannot drift.

- `reference/settings.md`: every field of `workers.core.settings.Settings` (environment name, type,
  default, description);
- `reference/cli.md`: every command of the Typer CLI with its `--help`, and the exit codes;
- `reference/metrics.md`: every metric of `workers/runtime/metrics.py` (name, type, labels, meaning).

`mkdocs.yml` names this file under `hooks:`; `tests/test_docs.py` builds the site and checks that each
setting, command and metric is in it. The `render_*` functions are pure (code in, Markdown out).
"""

from __future__ import annotations

import re
import types
from typing import Any, get_args, get_origin

GENERATED = {
    "reference/settings.md": "render_settings",
    "reference/cli.md": "render_cli",
    "reference/metrics.md": "render_metrics",
}
"""Generated page → the function of this module that writes it."""

HELP_WIDTH = 100


def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, newlines folded."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _type_name(annotation: Any) -> str:
    """`int`, `str or none`, `auto, json or console` for a settings annotation."""
    origin = get_origin(annotation)
    if origin is types.UnionType or str(origin) == "typing.Union":
        return " or ".join(_type_name(a) for a in get_args(annotation))
    if str(origin) == "typing.Literal":
        return ", ".join(str(a) for a in get_args(annotation))
    if annotation is type(None):
        return "none"
    name = getattr(annotation, "__name__", str(annotation))
    return {"RedisDsn": "Redis URL"}.get(name, name)


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(environment name, type, default, description) of every setting, in declaration order."""
    from workers.core.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(unset)" if default is None else '""' if default == "" else str(default)
        rows.append((f"{prefix}{name}".upper(), _type_name(field.annotation), shown, field.description or ""))
    return rows


def render_settings() -> str:
    """The settings reference page."""
    lines = [
        "# Settings",
        "",
        "Every setting is an environment variable, or a line in `.env` in the working directory.",
        "This page is generated from `workers.core.settings.Settings` when the site is built.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for env, kind, default, description in settings_rows():
        lines.append(f"| `{env}` | {_cell(kind)} | `{_cell(default)}` | {_cell(description)} |")
    lines += [
        "",
        "The deploy scripts also read `NEWSFLOW_QUEUES` (the stages a worker consumes),",
        "`NEWSFLOW_WORKER_NAME` (its name before `@HOST`) and `NEWSFLOW_BIN_DIR` (where `newsflow` is).",
        "The compose file reads `NEWSFLOW_IMAGE`. They are not settings of the program.",
        "",
    ]
    return "\n".join(lines)


def commands() -> list[tuple[str, Any]]:
    """(full command name, click command) for every command and group of the CLI, depth first."""
    import typer

    from workers.cli import app

    root = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(name: str, command: Any) -> None:
        found.append((name, command))
        for sub_name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk(f"{name} {sub_name}", sub)

    walk("newsflow", root)
    return found


def command_help(name: str) -> str:
    """The text `newsflow ... --help` prints, at a fixed width."""
    from typer.testing import CliRunner

    from workers.cli import app

    done = CliRunner().invoke(app, [*name.split()[1:], "--help"], env={"COLUMNS": str(HELP_WIDTH)})
    if done.exit_code != 0:
        raise RuntimeError(f"{name} --help exited {done.exit_code}: {done.output}")
    return done.output


def _exit_codes() -> list[str]:
    from workers.cli import base

    doc = base.__doc__ or ""
    return [line for line in doc.splitlines() if line.startswith("|")]


def render_cli() -> str:
    """The command reference page: exit codes, then each command's --help."""
    lines = [
        "# Commands",
        "",
        "Every command of `newsflow`, with the text its `--help` prints.",
        "This page is generated from the command line's code when the site is built.",
        "`-h` is the same as `--help`.",
        "",
        "## Exit codes",
        "",
        *_exit_codes(),
        "",
    ]
    for name, _command in commands():
        lines += [f"## {name}", "", "```text", command_help(name).rstrip(), "```", ""]
    return "\n".join(lines)


def render_metrics() -> str:
    """The metrics reference page."""
    from workers.runtime import metrics

    lines = [
        "# Metrics",
        "",
        "Every metric newsflow exports. This page is generated from `workers/runtime/metrics.py`.",
        "Workers serve the first group on `NEWSFLOW_METRICS_PORT`.",
        "`newsflow metrics` (one exporter per deployment) serves the second.",
        "",
    ]
    for title, group in (("Workers", metrics.WORKER_METRICS), ("Exporter", metrics.EXPORTER_METRICS)):
        lines += [f"## {title}", "", "| metric | type | labels | meaning |", "|---|---|---|---|"]
        for name, (kind, labels, doc) in group.items():
            shown = ", ".join(f"`{label}`" for label in labels) or "-"
            lines.append(f"| `{name}` | {kind} | {shown} | {_cell(doc)} |")
        lines.append("")
    return "\n".join(lines)


def render(page: str) -> str:
    """The Markdown of one generated page (a key of GENERATED)."""
    text: str = globals()[GENERATED[page]]()
    return re.sub(r"[ \t]+\n", "\n", text)


def on_files(files: Any, config: Any) -> Any:
    """MkDocs event: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    for page in GENERATED:
        existing = files.get_file_from_path(page)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, page, content=render(page)))
    return files

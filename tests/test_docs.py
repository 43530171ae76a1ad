"""The documentation: the site builds strictly, its reference pages hold every setting, command and metric,
and the README stays short and points into the docs."""

import html
import re

import pytest

from tests.samples import ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built once, in-process, with --strict (warnings are errors)."""
    import os

    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    out = tmp_path_factory.mktemp("site")
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True)
    build(config)
    return out


def _page(site, path: str) -> str:
    return html.unescape((site / path / "index.html").read_text(encoding="utf-8"))


def test_settings_reference_lists_every_setting_with_type_and_default(site):
    """Each Settings field appears in the built settings page as its NEWSFLOW_ name with its default."""
    from mkdocs_hooks import settings_rows
    from workers.core.settings import Settings

    page = _page(site, "reference/settings")
    assert len(settings_rows()) == len(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        env = f"NEWSFLOW_{name.upper()}"
        row = re.search(rf"<td><code>{env}</code></td>\s*<td>([^<]*)</td>\s*<td><code>([^<]*)</code>", page)
        assert row, f"{env} missing from the built settings reference"
        default = field.default
        shown = "(unset)" if default is None else '""' if default == "" else str(default)
        assert row.group(2) == shown, env


def test_command_reference_holds_every_command_and_its_help(site):
    """Each command and subcommand of the CLI has a section with its --help text in the built page."""
    import typer.main

    from workers.cli import app

    page = _page(site, "reference/cli")
    root = typer.main.get_command(app)
    names = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        if command.hidden:
            continue
        names.append(f"newsflow {name}")
        names += [f"newsflow {name} {sub}" for sub in getattr(command, "commands", {})]
    assert "newsflow purge" in names
    assert "newsflow dead-letters retry" not in names
    for name in names:
        assert f">{name}<" in page, f"{name} missing from the built command reference"
        assert f"Usage: {name} " in page, f"{name}: no --help text in the command reference"
    assert "<list[" not in page  # no Python type names in help


def test_metrics_reference_lists_every_metric(site):
    """Each metric declared in workers/runtime/metrics.py is in the built metrics page with its type."""
    from workers.runtime.metrics import METRICS

    page = _page(site, "reference/metrics")
    for name, (kind, _labels, _doc) in METRICS.items():
        assert re.search(rf"<code>{name}</code></td>\s*<td>{kind}</td>", page), name


def _sentences(markdown: str) -> list[str]:
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    prose = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("|", "#", "<"))
    ]
    joined = re.sub(r"`[^`]*`", "X", " ".join(prose))
    return [s for s in re.split(r"(?<=[.!?:])\s+(?=[A-Z*\[(`-])", joined) if len(s.split()) > 2]


def test_readme_is_short_and_points_into_the_docs():
    """The README is under 250 lines, its sentences short on average, and every local link resolves."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    sentences = _sentences(readme)
    assert sum(len(s.split()) for s in sentences) / len(sentences) <= 25
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert "docs/tutorial.md" in links
    assert "docs/guide/index.md" in links
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def test_guide_and_tutorial_sentences_are_short():
    """The pages an operator reads first keep sentences of at most 25 words on average."""
    for path in [ROOT / "docs" / "tutorial.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]:
        sentences = _sentences(path.read_text(encoding="utf-8"))
        if sentences:
            assert sum(len(s.split()) for s in sentences) / len(sentences) <= 25, path.name


def test_ci_builds_the_site_strictly_after_the_lints_and_before_the_tests():
    """.ci/run runs `mkdocs build --strict` (without --quiet, which would hide the warnings strict counts)
    after the import contracts and before pytest."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    build = next(i for i, line in enumerate(commands) if "mkdocs build --strict" in line)
    assert "--quiet" not in commands[build]
    assert next(i for i, line in enumerate(commands) if "lint-imports" in line) < build
    assert build < next(i for i, line in enumerate(commands) if "-m pytest" in line)

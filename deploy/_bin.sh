# Sourced by the start scripts: find the directory holding `newsflow` and `celery`, so a script works
# from a checkout (.venv/bin), an installed tree (/opt/newsflow/bin, as in the Docker image and the
# systemd units) or PATH, without anyone adding .venv/bin to PATH first. NEWSFLOW_BIN_DIR overrides.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${NEWSFLOW_BIN_DIR:-}" ]; then
  bin=$NEWSFLOW_BIN_DIR
elif [ -x "$here/../.venv/bin/newsflow" ]; then
  bin=$(cd "$here/../.venv/bin" && pwd)
elif [ -x "$here/../bin/newsflow" ]; then
  bin=$(cd "$here/../bin" && pwd)
elif command -v newsflow >/dev/null 2>&1; then
  bin=$(dirname "$(command -v newsflow)")
else
  echo "newsflow not found: install it (pip install .) or set NEWSFLOW_BIN_DIR" >&2
  exit 127
fi
if [ ! -x "$bin/newsflow" ]; then
  echo "NEWSFLOW_BIN_DIR=$bin holds no newsflow executable" >&2
  exit 127
fi

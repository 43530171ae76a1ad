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
# A virtualenv links to the Python that created it: one under /root (a pyenv build) cannot be run by the
# worker user, and exec would fail with "bad interpreter: Permission denied". Say it in one line instead.
interp=$(head -n 1 "$bin/newsflow" 2>/dev/null | sed -n 's/^#![[:space:]]*\([^[:space:]]*\).*/\1/p')
if [ -n "$interp" ] && ! "$interp" -c '' >/dev/null 2>&1; then
  echo "newsflow's Python ($(readlink -f "$interp" 2>/dev/null || echo "$interp")) cannot be run by user $(id -un): a virtualenv made from a Python under /root (pyenv)? Recreate it from one every user can run: /usr/bin/python3.11 -m venv /opt/newsflow" >&2
  exit 126
fi

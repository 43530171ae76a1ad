#!/usr/bin/env bash
# Create or migrate the database schema once per deploy, before workers start (workers refuse to
# start on a schema that is not at the code's revision).
set -euo pipefail
source "$(dirname "$0")/_bin.sh"
: "${NEWSFLOW_DATABASE_URL:?set NEWSFLOW_DATABASE_URL (see deploy/env.example)}"
exec "$bin/newsflow" db upgrade "$@"

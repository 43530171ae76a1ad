#!/usr/bin/env bash
# Redis for newsflow, password-protected. Needs REDIS_PASSWORD in the environment.
set -euo pipefail
: "${REDIS_PASSWORD:?set REDIS_PASSWORD (see deploy/env.example)}"
here=$(cd "$(dirname "$0")" && pwd)
exec redis-server "$here/redis.conf" --requirepass "$REDIS_PASSWORD" "$@"

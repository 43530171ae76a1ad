#!/usr/bin/env bash
# Redis for newsflow, password-protected. Needs REDIS_PASSWORD; REDIS_PORT, REDIS_DIR and REDIS_BIND
# choose port, data directory and bind addresses (see redis.conf). Further arguments go to redis-server.
set -euo pipefail
: "${REDIS_PASSWORD:?set REDIS_PASSWORD (see deploy/env.example)}"
here=$(cd "$(dirname "$0")" && pwd)
# Word splitting of REDIS_BIND is wanted: it is a list of addresses.
# shellcheck disable=SC2086
exec redis-server "$here/redis.conf" --port "${REDIS_PORT:-6379}" --dir "${REDIS_DIR:-/var/lib/redis}" \
    --bind ${REDIS_BIND:-127.0.0.1 -::1} --requirepass "$REDIS_PASSWORD" "$@"

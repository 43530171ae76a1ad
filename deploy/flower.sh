#!/usr/bin/env bash
# Flower, behind basic auth, started once at least one worker answers. Its task history survives a
# restart (FLOWER_DB, saved every minute) and is bounded (FLOWER_MAX_TASKS tasks in memory).
# Flower serves /metrics and /healthcheck WITHOUT authentication (its own choice): keep it on
# loopback and publish it through deploy/nginx-flower.conf, which guards those paths too.
set -euo pipefail
source "$(dirname "$0")/_bin.sh"
: "${NEWSFLOW_BROKER_URL:?set NEWSFLOW_BROKER_URL (see deploy/env.example)}"
: "${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password (see deploy/env.example)}"
case "$FLOWER_BASIC_AUTH" in
  *:?*) ;;
  *) echo "FLOWER_BASIC_AUTH must be user:password with a non-empty password" >&2; exit 2 ;;
esac
# FLOWER_WAIT_ATTEMPTS: how many 5-second waits for a worker before starting anyway (default 60).
for attempt in $(seq 1 "${FLOWER_WAIT_ATTEMPTS:-60}"); do
  if "$bin/celery" -A workers.celery_app inspect ping --timeout 2 >/dev/null 2>&1; then
    break
  fi
  echo "flower: waiting for workers ($attempt/${FLOWER_WAIT_ATTEMPTS:-60})" >&2
  sleep 5
done
db=${FLOWER_DB:-${STATE_DIRECTORY:-/var/lib/newsflow}/flower.db}
# Flower reads FLOWER_BASIC_AUTH from the environment itself, so the password never shows in `ps`.
export FLOWER_BASIC_AUTH
exec "$bin/celery" -A workers.celery_app flower \
    --address="${FLOWER_ADDRESS:-127.0.0.1}" --port="${FLOWER_PORT:-5555}" \
    --persistent=True --db="$db" --state_save_interval=60000 \
    --max_tasks="${FLOWER_MAX_TASKS:-10000}" --purge_offline_workers=3600 "$@"

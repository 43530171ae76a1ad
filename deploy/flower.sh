#!/usr/bin/env bash
# Flower, behind basic auth, started once at least one worker answers. Its task history survives a
# restart in one file, FLOWER_DB (saved every minute and at shutdown), and is bounded
# (FLOWER_MAX_TASKS tasks in memory). Without FLOWER_DB the history goes to
# $STATE_DIRECTORY/flower.db (systemd) or /var/lib/newsflow/flower.db when that directory is
# writable, and is not kept otherwise (one line says so).
# Flower serves /metrics and /healthcheck WITHOUT authentication (its own choice): keep it on
# loopback and publish it through deploy/nginx-flower.conf, which restricts those two paths and
# passes every other request, with its credentials, to Flower: FLOWER_BASIC_AUTH is the one secret.
set -euo pipefail
source "$(dirname "$0")/_bin.sh"
here=$(cd "$(dirname "$0")" && pwd)
# say EVENT MESSAGE: one line on stderr, JSON like every newsflow process unless stderr is a terminal
# (NEWSFLOW_LOG_FORMAT=json|console|auto, as for newsflow itself).
say() {
  local format=${NEWSFLOW_LOG_FORMAT:-auto}
  if [ "$format" = json ] || { [ "$format" = auto ] && [ ! -t 2 ]; }; then
    local message=${2//\\/\\\\}
    message=${message//\"/\\\"}
    printf '{"event": "%s", "message": "%s", "level": "%s", "logger": "deploy.flower", "timestamp": "%s"}\n' \
      "$1" "$message" "${3:-info}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
  else
    echo "flower: $2" >&2
  fi
}
: "${NEWSFLOW_BROKER_URL:?set NEWSFLOW_BROKER_URL (see deploy/env.example)}"
: "${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password (see deploy/env.example)}"
case "$FLOWER_BASIC_AUTH" in
  *:?*) ;;
  *) say flower_refused "FLOWER_BASIC_AUTH must be user:password with a non-empty password" error; exit 2 ;;
esac
if [ -n "${FLOWER_DB:-}" ]; then
  db=$FLOWER_DB
  if [ ! -d "$(dirname "$db")" ] || [ ! -w "$(dirname "$db")" ]; then
    say flower_refused "FLOWER_DB=$db: its directory does not exist or is not writable" error
    exit 2
  fi
  state=(--persistent=True --db="$db" --state_save_interval=60000)
elif [ -d "${STATE_DIRECTORY:-/var/lib/newsflow}" ] && [ -w "${STATE_DIRECTORY:-/var/lib/newsflow}" ]; then
  state=(--persistent=True --db="${STATE_DIRECTORY:-/var/lib/newsflow}/flower.db" --state_save_interval=60000)
else
  say flower_state_not_kept "no FLOWER_DB and ${STATE_DIRECTORY:-/var/lib/newsflow} is not writable: task history is not kept across restarts" warning
  state=(--persistent=False)
fi
# FLOWER_WAIT_ATTEMPTS: how many 5-second waits for a worker before starting anyway (default 60).
for attempt in $(seq 1 "${FLOWER_WAIT_ATTEMPTS:-60}"); do
  if "$bin/celery" -A workers.runtime.celery_app inspect ping --timeout 2 >/dev/null 2>&1; then
    break
  fi
  say flower_waiting_for_workers "waiting for workers ($attempt/${FLOWER_WAIT_ATTEMPTS:-60})"
  sleep 5
done
# Flower reads FLOWER_BASIC_AUTH from the environment itself, so the password never shows in `ps`.
export FLOWER_BASIC_AUTH
python=$bin/python
[ -x "$python" ] || python=python3
exec "$python" "$here/flower_onefile.py" -A workers.runtime.celery_app flower \
    --address="${FLOWER_ADDRESS:-127.0.0.1}" --port="${FLOWER_PORT:-5555}" "${state[@]}" \
    --max_tasks="${FLOWER_MAX_TASKS:-10000}" --purge_offline_workers=3600 "$@"

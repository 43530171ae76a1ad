#!/usr/bin/env bash
# The reconciler: a pass every NEWSFLOW_RECONCILE_EVERY seconds re-sends articles whose message was
# lost, so every accepted article ends stored or dead-lettered (README "Reliability"). Run one per
# deployment (a second is a hot spare: a PostgreSQL lock lets one pass run at a time). Each finished
# pass is recorded for the exporter (newsflow_reconcile_last_pass_timestamp_seconds; alert
# NewsflowReconcilerStopped). Logs JSON lines like every other process.
set -euo pipefail
source "$(dirname "$0")/_bin.sh"
: "${NEWSFLOW_BROKER_URL:?set NEWSFLOW_BROKER_URL (see deploy/env.example)}"
: "${NEWSFLOW_DATABASE_URL:?set NEWSFLOW_DATABASE_URL (see deploy/env.example)}"
exec "$bin/newsflow" reconcile --loop "$@"

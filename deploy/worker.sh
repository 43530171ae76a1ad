#!/usr/bin/env bash
# One Celery worker. Run as many as you like, on any host: each consumes the stage queues given
# in NEWSFLOW_QUEUES (default all four), so a slow stage can get workers of its own, e.g.
#   NEWSFLOW_QUEUES=tag deploy/worker.sh --concurrency 4
set -euo pipefail
: "${NEWSFLOW_BROKER_URL:?set NEWSFLOW_BROKER_URL (see deploy/env.example)}"
: "${NEWSFLOW_DATABASE_URL:?set NEWSFLOW_DATABASE_URL (see deploy/env.example)}"
exec newsflow worker --queues "${NEWSFLOW_QUEUES:-clean,dedup,tag,store}" \
    --hostname "${NEWSFLOW_WORKER_NAME:-newsflow}@%h" "$@"

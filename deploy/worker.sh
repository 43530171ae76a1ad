#!/usr/bin/env bash
# One Celery worker. Run as many as you like, on any host: each consumes the stage queues given
# in NEWSFLOW_QUEUES (default all four), so a slow stage can get workers of its own, e.g.
#   NEWSFLOW_QUEUES=tag deploy/worker.sh --concurrency 4
# Its name is NEWSFLOW_WORKER_NAME@HOST, by default newsflow-QUEUES@HOST (newsflow-tag@web1); give a
# second worker on the same host and queues a name of its own. It refuses to run as root.
set -euo pipefail
source "$(dirname "$0")/_bin.sh"
: "${NEWSFLOW_BROKER_URL:?set NEWSFLOW_BROKER_URL (see deploy/env.example)}"
: "${NEWSFLOW_DATABASE_URL:?set NEWSFLOW_DATABASE_URL (see deploy/env.example)}"
if [ "$(id -u)" = 0 ]; then
  echo "worker.sh: refusing to run as root; run it as a dedicated user (systemd User=, Docker USER, Kubernetes runAsNonRoot)" >&2
  exit 2
fi
queues=${NEWSFLOW_QUEUES:-clean,dedup,tag,store}
name=${NEWSFLOW_WORKER_NAME:-newsflow-${queues//,/-}}
exec "$bin/newsflow" worker --queues "$queues" --hostname "$name@%h" "$@"

#!/usr/bin/env bash
# Create or migrate the database schema once per deploy, before workers start.
set -euo pipefail
exec newsflow db upgrade "$@"

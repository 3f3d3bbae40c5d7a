#!/usr/bin/env bash
# down.sh — `make down`: stops what `make up` started under .local/ (producer, worker,
# MariaDB, Redis, Kafka).  Data and settings stay for the next `make up`; nothing to
# stop is fine.  `rm -rf .local` after it starts from scratch.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tests/infra/stack.sh" stop "$ROOT/.local"
echo "down: stopped (data kept in .local/)"

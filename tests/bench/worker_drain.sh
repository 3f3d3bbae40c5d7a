#!/usr/bin/env bash
# worker_drain.sh — the worker's drain rate next to the raw INSERT ceiling, in one
# run against a stack of your own (tests/infra/stack.sh start DIR; migrations and
# topics applied):
#
#   tests/bench/worker_drain.sh DIR [N] [worker flags...]
#
# Seeds N (default 30000) noop tasks with the worker stopped (seed_backlog), starts
# one dispatch-worker, times the drain until all N are SUCCEEDED, stops it, then
# measures insert_rate at 16 connections for 5 s and prints the ratio.  FRESH=1
# empties tasks and task_attempts first (your own stack only!): counting the
# drain scans the SUCCEEDED rows of the last hour.
set -euo pipefail
DIR=${1:?stack dir}
N=${2:-30000}
shift 2 || shift $#
BUILD=${BUILD:-build}
set -a
. "$DIR/stack.env"
set +a
if [ "${FRESH:-0}" = 1 ]; then
    mariadb -h"$DISPATCH_MYSQL_HOST" -P"$DISPATCH_MYSQL_PORT" -u"$DISPATCH_MYSQL_USER" \
        -p"$DISPATCH_MYSQL_PASSWORD" "$DISPATCH_MYSQL_DATABASE" \
        -e 'TRUNCATE task_attempts; TRUNCATE tasks'
fi
"$BUILD/tests/bench/seed_backlog" "$N"
PORT=$((20000 + RANDOM % 20000))
DISPATCH_LOG_LEVEL=${LOG_LEVEL:-warn} "$BUILD/bin/dispatch-worker" --config "$DIR/stack.env" \
    --worker-http-addr "127.0.0.1:$PORT" "$@" 2>"$DIR/log/drain-worker.log" &
WPID=$!
trap 'kill -TERM $WPID 2>/dev/null || true' EXIT
sql() { mariadb --protocol=tcp -h"$DISPATCH_MYSQL_HOST" -P"$DISPATCH_MYSQL_PORT" -u"$DISPATCH_MYSQL_USER" \
    -p"$DISPATCH_MYSQL_PASSWORD" -N -B "$DISPATCH_MYSQL_DATABASE" -e "$1"; }
# the drain is timed from the first SUCCEEDED row to the last, as the database saw them
LEFT=$N
while [ "$LEFT" -gt 0 ]; do
    sleep 0.2
    LEFT=$(sql "SELECT COUNT(*) FROM tasks WHERE status NOT IN ('SUCCEEDED','DEAD','CANCELED')")
done
DRAIN=$(sql "SELECT CONCAT('drained=', COUNT(*), ' seconds=', TIMESTAMPDIFF(MICROSECOND, MIN(finished_at), MAX(finished_at)) / 1e6,
             ' tasks_per_s=', COUNT(*) / (TIMESTAMPDIFF(MICROSECOND, MIN(finished_at), MAX(finished_at)) / 1e6))
             FROM tasks WHERE status = 'SUCCEEDED' AND finished_at > NOW(6) - INTERVAL 1 HOUR")
kill -TERM $WPID
wait $WPID || true
trap - EXIT
INS=$("$BUILD/tests/bench/insert_rate" 16 5)
echo "$DRAIN"
echo "insert_rate: $INS"
TPS=$(sed -n 's/.*tasks_per_s=\([0-9.]*\).*/\1/p' <<<"$DRAIN")
ROWS=$(sed -n 's/.*rows_per_s=\([0-9.]*\).*/\1/p' <<<"$INS")
awk -v t="$TPS" -v r="$ROWS" 'BEGIN { printf "ratio drain/insert = %.2f\n", t / r }'

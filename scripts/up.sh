#!/usr/bin/env bash
# up.sh — `make up`: the local stack under .local/, no Docker.
#
#   BUILD=build scripts/up.sh        (make up: after scripts/deps.sh and `make all`)
#
# Starts MariaDB (13306), Redis (16379) and Kafka 3.9.1 (19092) with
# tests/infra/stack.sh, runs the migrations, creates the topics, starts
# dispatch-producer (API on 127.0.0.1:8080) and dispatch-worker (127.0.0.1:9090) in the
# background, and leaves every setting in .local/stack.env.  Idempotent: what already
# runs is kept, what died (a killed worker, say) is started again.  Logs:
# .local/log/*.log; `make down` stops it all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# .local/ holds the database password and the JWT secret (stack.env, jwt.secret):
# everything up.sh and the stack create there is private from the start
umask 077
BUILD=${BUILD:-build}
BIN=$(realpath -m "$BUILD")/bin
LOCAL=$ROOT/.local
STACK=$ROOT/tests/infra/stack.sh
ENV_FILE=$LOCAL/stack.env
HTTP_ADDR=127.0.0.1:8080
WORKER_HTTP_ADDR=127.0.0.1:9090
API_URL=http://$HTTP_ADDR
HEALTH_TIMEOUT=${DISPATCH_UP_TIMEOUT:-30}

die() {
    printf 'up: %s\n' "$*" >&2
    exit 1
}

for b in dispatchctl dispatch-producer dispatch-worker; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing: build it with 'make all' (make up does)"
done

"$STACK" start "$LOCAL" --fixed

# The JWT signing secret (32 random bytes, hex), generated once like the DB password.
if [[ ! -s $LOCAL/jwt.secret ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$LOCAL/jwt.secret.tmp")
    mv "$LOCAL/jwt.secret.tmp" "$LOCAL/jwt.secret"
fi
"$STACK" env-set "$LOCAL" \
    "DISPATCH_HTTP_ADDR=$HTTP_ADDR" \
    "DISPATCH_WORKER_HTTP_ADDR=$WORKER_HTTP_ADDR" \
    "DISPATCH_API_URL=$API_URL" \
    "DISPATCH_JWT_SECRET=$(<"$LOCAL/jwt.secret")"

ctl() {
    "$BIN/dispatchctl" --config "$ENV_FILE" --migrations-dir "$ROOT/migrations" "$@" ||
        die "dispatchctl $* failed"
}
ctl migrate up
ctl topics create

running() { "$STACK" check "$LOCAL" "$1" >/dev/null; }

# start NAME PORT BINARY: unless it runs; refuses a port some other program holds.
start() {
    local name=$1 port=$2 binary=$3
    running "$name" && return 0
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken by another program (ss -ltnp 'sport = :$port'); $name not started"
    fi
    "$STACK" spawn "$LOCAL" "$name" -- "$BIN/$binary" --config "$ENV_FILE"
}
start producer 8080 dispatch-producer
start worker 9090 dispatch-worker

# wait_healthy NAME URL: bounded; fails fast when the process died.
wait_healthy() {
    local name=$1 url=$2 deadline=$((SECONDS + HEALTH_TIMEOUT))
    until curl -fsS --max-time 1 -o /dev/null "$url" 2>/dev/null; do
        if ! running "$name"; then
            printf 'up: %s exited; last lines of %s:\n' "$name" "$LOCAL/log/$name.log" >&2
            tail -n 20 "$LOCAL/log/$name.log" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            printf 'up: %s: %s did not answer within %s s (log: %s)\n' \
                "$name" "$url" "$HEALTH_TIMEOUT" "$LOCAL/log/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
}
wait_healthy producer "$API_URL/healthz" || exit 1
# The API is what `make up` promises; a worker that runs but whose own /healthz stays
# silent is worth a warning, not a failure.
wait_healthy worker "http://$WORKER_HTTP_ADDR/healthz" || echo "up: warning: the worker runs but its /healthz does not answer" >&2

cat <<EOF

dispatch is up: API $API_URL (worker metrics http://$WORKER_HTTP_ADDR/metrics)
  settings:  .local/stack.env — load them with:  set -a; source .local/stack.env; set +a
  logs:      .local/log/{producer,worker,mariadb,redis,kafka}.log
  stop:      make down
EOF

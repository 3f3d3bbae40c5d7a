#!/usr/bin/env bash
# stack.sh — the one place that starts and stops the real MariaDB, Redis and Kafka that
# the tests (tests/run.sh) and `make up` (scripts/up.sh) run against.  No Docker: the
# Debian packages' servers and Apache Kafka 3.9.1's jars (scripts/deps.sh) run as plain
# processes with everything under one directory DIR:
#
#   DIR/{mariadb,redis,kafka}/   data            DIR/run/<name>.pid   pid files
#   DIR/log/<name>.log           logs            DIR/stack.env        the settings
#   DIR/ports.env                ports in use    DIR/mysql.password   generated once
#
# Usage:
#   stack.sh start DIR [--fixed]  start what is not running (the three in parallel) and
#                                 write DIR/stack.env; --fixed: MariaDB 13306, Redis 16379,
#                                 Kafka 19092 (controller 19093); otherwise free ports
#                                 chosen at random, reserved so concurrent runs never collide
#   stack.sh stop DIR             stop every process with a pid file in DIR/run
#   stack.sh status DIR           one line per service: running/stopped
#   stack.sh check DIR [NAME...]  non-zero, naming each service (default: the three)
#                                 that is not running
#   stack.sh spawn DIR NAME -- CMD...
#                                 run CMD detached (own session, stdin /dev/null, log
#                                 DIR/log/NAME.log, pid DIR/run/NAME.pid) unless NAME runs
#   stack.sh env-set DIR KEY=VALUE...
#                                 set keys in DIR/stack.env (atomic rewrite, no duplicates)
#
# A pid file counts only while its process is alive and its command line names DIR, so
# a stale file after a reboot never makes us skip a start or signal a stranger.
# Timeouts (seconds): STACK_MYSQL_TIMEOUT=30 STACK_REDIS_TIMEOUT=10 STACK_KAFKA_TIMEOUT=60
# STACK_STOP_TIMEOUT=20.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${DISPATCH_CACHE:-$HOME/.cache/dispatch}
KAFKA_VERSION=3.9.1
KAFKA_LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
SERVICES=(mariadb redis kafka)
FIXED_MYSQL_PORT=13306
FIXED_REDIS_PORT=16379
FIXED_KAFKA_PORT=19092
FIXED_CONTROLLER_PORT=19093
# Random ports come from [PORT_MIN, start of the kernel's ephemeral range).
PORT_MIN=20000
PORT_REGISTRY=${TMPDIR:-/tmp}/dispatch-stack-ports

say() { printf 'stack: %s\n' "$*"; }
warn() { printf 'stack: %s\n' "$*" >&2; }
die() {
    warn "$*"
    exit 1
}

usage() {
    sed -n '/^# Usage:/,/^# A pid file/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

now() { printf '%s' "${EPOCHREALTIME/[.,]/}"; } # microseconds
elapsed() {                                      # elapsed START → "1.23"
    local us=$(($(now) - $1))
    printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}

# --- pid files --------------------------------------------------------------------

# Prints the pid of NAME when its pid file names a live process of ours.
live_pid() {
    local file=$RUN/$1.pid pid cmdline
    [[ -s $file ]] || return 1
    read -r pid <"$file" || return 1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
    [[ $cmdline == *"$DIR/"* ]] || return 1
    proc_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

# True while PID exists and is not a zombie.
proc_alive() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# spawn NAME CMD...: detached in its own session; the child writes its own pid file
# before it execs, so the file exists as long as the process does.
spawn() {
    local name=$1
    shift
    rm -f "$RUN/$name.pid"
    # shellcheck disable=SC2016 # $$ and $1 belong to the child shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' spawn "$RUN/$name.pid" "$@" \
        >>"$LOG/$name.log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 500; i++)); do
        [[ -s $RUN/$name.pid ]] && return 0
        sleep 0.01
    done
    die "$name: no pid file after spawning $1"
}

log_tail() {
    local file=$LOG/$1.log
    [[ -f $file ]] || return 0
    warn "last lines of $file:"
    tail -n "${2:-25}" "$file" | sed 's/^/    /' >&2
}

# wait_ready NAME TIMEOUT PROBE...: polls PROBE every 0.1 s; fails fast if NAME died.
wait_ready() {
    local name=$1 timeout=$2
    shift 2
    local deadline=$(($(now) + timeout * 1000000))
    while :; do
        if ! live_pid "$name" >/dev/null; then
            warn "$name died while starting"
            log_tail "$name"
            return 1
        fi
        "$@" && return 0
        if (($(now) > deadline)); then
            warn "$name did not become ready within ${timeout} s"
            log_tail "$name"
            return 1
        fi
        sleep 0.1
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- ports ------------------------------------------------------------------------

# Prints every local TCP port in use (any state, IPv4 and IPv6).
used_ports() {
    local f sl addr _
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        while read -r sl addr _; do
            [[ $sl == sl ]] && continue
            printf '%d\n' $((16#${addr##*:}))
        done <"$f"
    done
}

port_free() {
    local p
    while read -r p; do
        [[ $p == "$1" ]] && return 1
    done < <(used_ports)
    return 0
}

# Picks 4 distinct free ports and reserves them in PORT_REGISTRY (under a lock) for DIR;
# a reservation lapses when its owner's ports.env is gone.
pick_random_ports() {
    mkdir -p "$PORT_REGISTRY"
    exec 8>"$PORT_REGISTRY/.lock"
    flock 8
    local hi _lo
    read -r _lo _ </proc/sys/net/ipv4/ip_local_port_range
    hi=$((_lo > PORT_MIN + 1000 ? _lo : 32768))
    local -A used=()
    local p owner
    while read -r p; do used[$p]=1; done < <(used_ports)
    local picked=() tries=0
    while ((${#picked[@]} < 4)); do
        ((++tries < 1000)) || die "no free ports found in $PORT_MIN..$((hi - 1))"
        p=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % (hi - PORT_MIN)))
        [[ -n ${used[$p]:-} ]] && continue
        if [[ -f $PORT_REGISTRY/$p ]]; then
            owner=$(<"$PORT_REGISTRY/$p")
            [[ $owner != "$DIR" && -f $owner/ports.env ]] && continue
        fi
        used[$p]=1
        picked+=("$p")
    done
    for p in "${picked[@]}"; do printf '%s\n' "$DIR" >"$PORT_REGISTRY/$p"; done
    MYSQL_PORT=${picked[0]} REDIS_PORT=${picked[1]}
    KAFKA_PORT=${picked[2]} CONTROLLER_PORT=${picked[3]}
    write_ports
    exec 8>&-
}

write_ports() {
    printf 'MYSQL_PORT=%s\nREDIS_PORT=%s\nKAFKA_PORT=%s\nCONTROLLER_PORT=%s\n' \
        "$MYSQL_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$CONTROLLER_PORT" >"$DIR/ports.env.tmp"
    mv "$DIR/ports.env.tmp" "$DIR/ports.env"
}

read_ports() {
    [[ -f $DIR/ports.env ]] || return 1
    local key value
    while IFS='=' read -r key value; do
        case $key in
        MYSQL_PORT | REDIS_PORT | KAFKA_PORT | CONTROLLER_PORT) printf -v "$key" '%s' "$value" ;;
        esac
    done <"$DIR/ports.env"
    [[ -n ${MYSQL_PORT:-} && -n ${REDIS_PORT:-} && -n ${KAFKA_PORT:-} && -n ${CONTROLLER_PORT:-} ]]
}

choose_ports() {
    local fixed=$1 svc alive=0
    for svc in "${SERVICES[@]}"; do
        live_pid "$svc" >/dev/null && alive=1
    done
    # Keep the ports of a stack that is partly up: only the dead part restarts.
    if ((alive)) && read_ports; then
        return 0
    fi
    if ((fixed)); then
        MYSQL_PORT=$FIXED_MYSQL_PORT REDIS_PORT=$FIXED_REDIS_PORT
        KAFKA_PORT=$FIXED_KAFKA_PORT CONTROLLER_PORT=$FIXED_CONTROLLER_PORT
        write_ports
    else
        pick_random_ports
    fi
}

need_port() { # SERVICE PORT...
    local svc=$1 p
    shift
    for p in "$@"; do
        port_free "$p" || die "$svc: port $p is already in use (see: ss -ltnp 'sport = :$p')"
    done
}

# --- MariaDB ----------------------------------------------------------------------

mysql_root() { mariadb --no-defaults --socket="$MYSQL_SOCKET" --user=root "$@"; }
mysql_ping() {
    [[ -S $MYSQL_SOCKET ]] &&
        mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" --user=root --connect-timeout=2 \
            ping >/dev/null 2>&1
}

mysql_password() {
    local file=$DIR/mysql.password
    if [[ ! -s $file ]]; then
        # Alphanumeric, so it needs no quoting in SQL or in stack.env.
        (umask 077 && head -c 48 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' |
            cut -c1-24 >"$file.tmp") && mv "$file.tmp" "$file"
    fi
    MYSQL_PASSWORD=$(<"$file")
}

start_mariadb() {
    local t0 data=$DIR/mariadb
    t0=$(now)
    if ! live_pid mariadb >/dev/null; then
        need_port mariadb "$MYSQL_PORT"
        if [[ ! -d $data/mysql ]]; then
            rm -rf "$data.tmp"
            if ! mariadb-install-db --no-defaults --user="$USER_NAME" --datadir="$data.tmp" \
                --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
                >>"$LOG/mariadb.log" 2>&1; then
                log_tail mariadb
                die "mariadb: mariadb-install-db failed"
            fi
            rm -rf "$data"
            mv "$data.tmp" "$data"
        fi
        rm -f "$MYSQL_SOCKET"
        spawn mariadb mariadbd --no-defaults --user="$USER_NAME" --datadir="$data" \
            --port="$MYSQL_PORT" --socket="$MYSQL_SOCKET" --bind-address=127.0.0.1 \
            --pid-file="$data/mariadbd.pid" --log-error="$LOG/mariadb.log" \
            --innodb-flush-log-at-trx-commit=1 --innodb-buffer-pool-size=256M \
            --skip-name-resolve --max-connections=500 \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    fi
    wait_ready mariadb "${STACK_MYSQL_TIMEOUT:-30}" mysql_ping || die "mariadb: not ready"
    # Idempotent: the same statements on every start keep the user's password in step
    # with DIR/mysql.password.  `dispatch\_test%` lets tests create their own schemas.
    local user sql="CREATE DATABASE IF NOT EXISTS dispatch;"
    for user in "'dispatch'@'127.0.0.1'" "'dispatch'@'localhost'"; do
        sql+="CREATE USER IF NOT EXISTS $user IDENTIFIED BY '$MYSQL_PASSWORD';"
        sql+="ALTER USER $user IDENTIFIED BY '$MYSQL_PASSWORD';"
        sql+="GRANT ALL PRIVILEGES ON \`dispatch\`.* TO $user;"
        sql+="GRANT ALL PRIVILEGES ON \`dispatch\\_test%\`.* TO $user;"
    done
    if ! mysql_root -e "$sql" >>"$LOG/mariadb.log" 2>&1; then
        log_tail mariadb
        die "mariadb: creating database and user failed"
    fi
    say "mariadb ready on 127.0.0.1:$MYSQL_PORT ($(elapsed "$t0") s)"
}

# --- Redis ------------------------------------------------------------------------

redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

start_redis() {
    local t0
    t0=$(now)
    if ! live_pid redis >/dev/null; then
        need_port redis "$REDIS_PORT"
        mkdir -p "$DIR/redis"
        # set-proc-title no: keep the command line (naming DIR) that live_pid looks for.
        spawn redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
            --appendonly no --daemonize no --dir "$DIR/redis" --logfile "$LOG/redis.log" \
            --set-proc-title no
    fi
    wait_ready redis "${STACK_REDIS_TIMEOUT:-10}" redis_ping || die "redis: not ready"
    say "redis ready on 127.0.0.1:$REDIS_PORT ($(elapsed "$t0") s)"
}

# --- Kafka ------------------------------------------------------------------------

JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

kafka_ready() {
    local meta
    port_open "$KAFKA_PORT" || return 1
    meta=$(timeout 5 kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 2 2>/dev/null) || return 1
    [[ $meta == *" broker 1 at "* ]]
}

# Same form as `kafka.tools.StorageTool random-uuid` (base64url of 16 random bytes, not
# starting with '-') without a JVM start.
kafka_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
        [[ $id != -* && ${#id} -eq 22 ]] && break
    done
    printf '%s\n' "$id"
}

write_kafka_config() {
    local dir=$DIR/kafka
    mkdir -p "$dir/data"
    cat >"$dir/server.properties.tmp" <<EOF
# Written by tests/infra/stack.sh: single-node KRaft broker+controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=6
# A restart after a crash (kill -9 in fault tests) waits for the dead incarnation's
# session to lapse before the broker may register again: 9 s by default.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
EOF
    mv "$dir/server.properties.tmp" "$dir/server.properties"
    cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$LOG/kafka.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
}

start_kafka() {
    local t0 dir=$DIR/kafka
    t0=$(now)
    if ! live_pid kafka >/dev/null; then
        need_port kafka "$KAFKA_PORT" "$CONTROLLER_PORT"
        if [[ ! -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar ]]; then
            "$ROOT/scripts/deps.sh" >&2
            [[ -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar ]] ||
                die "kafka: no jars in $KAFKA_LIBS (run scripts/deps.sh)"
        fi
        write_kafka_config
        if [[ ! -f $dir/data/meta.properties ]]; then
            [[ -s $dir/cluster.id ]] || kafka_cluster_id >"$dir/cluster.id"
            if ! "$JAVA" -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$dir/log4j.properties" \
                kafka.tools.StorageTool format --config "$dir/server.properties" \
                --cluster-id "$(<"$dir/cluster.id")" --ignore-formatted >>"$LOG/kafka.log" 2>&1; then
                log_tail kafka
                die "kafka: formatting the storage failed"
            fi
        fi
        spawn kafka "$JAVA" -Xmx512m -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -Djava.awt.headless=true -cp "$KAFKA_LIBS/*" \
            -Dlog4j.configuration="file:$dir/log4j.properties" kafka.Kafka "$dir/server.properties"
    fi
    wait_ready kafka "${STACK_KAFKA_TIMEOUT:-60}" kafka_ready || die "kafka: not ready"
    say "kafka ready on 127.0.0.1:$KAFKA_PORT ($(elapsed "$t0") s)"
}

# --- stack.env --------------------------------------------------------------------

# env_set KEY=VALUE...: rewrites DIR/stack.env atomically, replacing those keys.
env_set() {
    local file=$DIR/stack.env kv key line
    local -A new=()
    local order=()
    for kv in "$@"; do
        [[ $kv == [A-Z_]*=* ]] || die "env-set: not KEY=VALUE: $kv"
        key=${kv%%=*}
        [[ -n ${new[$key]+x} ]] || order+=("$key")
        new[$key]=$kv
    done
    # It holds passwords and the JWT secret: created 0600 (umask in a subshell, so
    # the file is never readable by others, not even between a create and a chmod).
    (
        umask 077
        {
            if [[ -f $file ]]; then
                while IFS= read -r line || [[ -n $line ]]; do
                    key=${line%%=*}
                    [[ $line == *=* && -n ${new[$key]+x} ]] && continue
                    printf '%s\n' "$line"
                done <"$file"
            else
                printf '# dispatch stack settings, written by tests/infra/stack.sh.\n'
                printf '# Load with: set -a; . %s; set +a\n' "$file"
            fi
            for key in "${order[@]}"; do printf '%s\n' "${new[$key]}"; done
        } >"$file.tmp.$$"
    )
    mv "$file.tmp.$$" "$file"
}

write_stack_env() {
    env_set \
        DISPATCH_MYSQL_HOST=127.0.0.1 \
        "DISPATCH_MYSQL_PORT=$MYSQL_PORT" \
        DISPATCH_MYSQL_USER=dispatch \
        "DISPATCH_MYSQL_PASSWORD=$MYSQL_PASSWORD" \
        DISPATCH_MYSQL_DATABASE=dispatch \
        "DISPATCH_MYSQL_SOCKET=$MYSQL_SOCKET" \
        DISPATCH_REDIS_HOST=127.0.0.1 \
        "DISPATCH_REDIS_PORT=$REDIS_PORT" \
        "DISPATCH_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT" \
        DISPATCH_KAFKA_TOPIC=dispatch.tasks \
        DISPATCH_WORKER_TEST_HANDLERS=1 \
        DISPATCH_KAFKA_RETRY_TOPIC=dispatch.tasks.retry \
        DISPATCH_KAFKA_DLQ_TOPIC=dispatch.tasks.dlq
}

# --- commands ---------------------------------------------------------------------

cmd_start() {
    local fixed=0 arg
    for arg in "$@"; do
        case $arg in
        --fixed) fixed=1 ;;
        *) usage ;;
        esac
    done
    local t0
    t0=$(now)
    choose_ports "$fixed"
    mysql_password
    ((${#MYSQL_SOCKET} < 100)) || die "socket path too long for a unix socket: $MYSQL_SOCKET"

    # The three in parallel; Kafka's JVM dominates.
    local -A jobs=()
    local svc failed=()
    # Background jobs ignore SIGINT: pass an interrupt on so none goes on starting.
    trap 'kill -TERM "${jobs[@]}" 2>/dev/null; exit 130' INT TERM
    for svc in "${SERVICES[@]}"; do
        "start_$svc" &
        jobs[$svc]=$!
    done
    for svc in "${SERVICES[@]}"; do
        wait "${jobs[$svc]}" || failed+=("$svc")
    done
    trap - INT TERM
    ((${#failed[@]} == 0)) || die "failed to start: ${failed[*]} (logs in $LOG)"
    write_stack_env
    say "ready in $(elapsed "$t0") s; settings in $DIR/stack.env"
}

# terminate TIMEOUT NAME PID [NAME PID]...: SIGTERM to each (its process group when it
# leads one), a bounded wait, then SIGKILL.
terminate() {
    local timeout=$1
    shift
    local names=() pids=() pid
    while (($# >= 2)); do
        names+=("$1")
        pids+=("$2")
        pid=$2
        shift 2
        # SIGCONT wakes a process that a fault test stopped (SIGSTOP).
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        kill -CONT -- "-$pid" 2>/dev/null || kill -CONT "$pid" 2>/dev/null || true
    done
    local deadline=$(($(now) + timeout * 1000000)) i alive
    while ((${#pids[@]})); do
        alive=0
        for i in "${!pids[@]}"; do
            proc_alive "${pids[i]}" && alive=1
        done
        ((alive)) || break
        if (($(now) > deadline)); then
            for i in "${!pids[@]}"; do
                proc_alive "${pids[i]}" || continue
                warn "${names[i]} (pid ${pids[i]}) did not stop within ${timeout} s: SIGKILL"
                kill -KILL -- "-${pids[i]}" 2>/dev/null || kill -KILL "${pids[i]}" 2>/dev/null || true
            done
            break
        fi
        sleep 0.05
    done
}

# stop_names TIMEOUT NAME...: stops the processes of those pid files, removes the files.
stop_names() {
    local timeout=$1
    shift
    local name pid args=()
    for name in "$@"; do
        pid=$(live_pid "$name") && args+=("$name" "$pid")
    done
    terminate "$timeout" "${args[@]}"
    for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

# Processes of this stack that no pid file names: a server a test started with
# `--config DIR/stack.env` and lost track of, say.  Only our programs, never an editor
# or a shell that happens to have a file of DIR open.
sweep() {
    local re pid argv0 args=()
    re=$(printf '%s/' "$DIR" | sed 's/[][\.*^$+?(){}|]/\\&/g')
    for pid in $(pgrep -f -- "$re" || true); do
        [[ $pid == "$$" ]] && continue
        argv0=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | head -n 1) || continue
        case ${argv0##*/} in
        dispatch-producer | dispatch-worker | dispatchctl | mariadbd | redis-server | java | kcat)
            args+=("${argv0##*/}" "$pid")
            ;;
        esac
    done
    ((${#args[@]} == 0)) && return 0
    warn "stopping processes of $DIR that no pid file names: ${args[*]}"
    terminate "${STACK_STOP_TIMEOUT:-20}" "${args[@]}"
}

cmd_stop() {
    [[ -d $RUN ]] || return 0
    local f name others=()
    for f in "$RUN"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        [[ " ${SERVICES[*]} " == *" $name "* ]] || others+=("$name")
    done
    local timeout=${STACK_STOP_TIMEOUT:-20}
    # The applications first (producer, worker, ...), then the services together.
    ((${#others[@]} == 0)) || stop_names "$timeout" "${others[@]}"
    stop_names "$timeout" "${SERVICES[@]}"
    sweep
    rm -f "$MYSQL_SOCKET"
    # Release random-port reservations.
    local p
    if [[ -d $PORT_REGISTRY ]] && read_ports; then
        for p in "$MYSQL_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$CONTROLLER_PORT"; do
            [[ -f $PORT_REGISTRY/$p && $(<"$PORT_REGISTRY/$p") == "$DIR" ]] &&
                rm -f "$PORT_REGISTRY/$p"
        done
    fi
    return 0
}

cmd_status() {
    read_ports || true
    local -A where=([mariadb]="127.0.0.1:${MYSQL_PORT:-?}" [redis]="127.0.0.1:${REDIS_PORT:-?}"
        [kafka]="127.0.0.1:${KAFKA_PORT:-?}")
    local names=("${SERVICES[@]}") f name pid
    for f in "$RUN"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        [[ " ${SERVICES[*]} " == *" $name "* ]] || names+=("$name")
    done
    for name in "${names[@]}"; do
        if pid=$(live_pid "$name"); then
            printf '%-8s running (pid %s%s)\n' "$name" "$pid" "${where[$name]:+, ${where[$name]}}"
        else
            printf '%-8s stopped\n' "$name"
        fi
    done
}

cmd_check() {
    local name pid bad=0 names=("$@")
    ((${#names[@]})) || names=("${SERVICES[@]}")
    for name in "${names[@]}"; do
        live_pid "$name" >/dev/null && continue
        bad=1
        pid=$(cat "$RUN/$name.pid" 2>/dev/null || true)
        if [[ -n $pid ]]; then
            printf 'harness: %s (pid %s) is not running\n' "$name" "$pid"
        else
            printf 'harness: %s is not running (no pid file)\n' "$name"
        fi
    done
    return "$bad"
}

cmd_spawn() {
    local name=${1:-} pid
    [[ $name =~ ^[a-z0-9_-]+$ && ${2:-} == -- && $# -ge 3 ]] || usage
    shift 2
    if pid=$(live_pid "$name"); then
        say "$name already running (pid $pid)"
        return 0
    fi
    spawn "$name" "$@"
    say "$name started (pid $(<"$RUN/$name.pid"), log $LOG/$name.log)"
}

main() {
    local cmd=${1:-}
    [[ $# -ge 2 ]] || usage
    case $cmd in
    start | spawn | env-set) mkdir -p "$2/run" "$2/log" ;;
    stop | status | check) ;;
    *) usage ;;
    esac
    if [[ -d $2 ]]; then
        DIR=$(cd "$2" && pwd -P)
    else
        DIR=$(realpath -m "$2")
    fi
    [[ $DIR != / ]] || die "refusing to use / as the stack directory"
    RUN=$DIR/run
    LOG=$DIR/log
    MYSQL_SOCKET=$RUN/mysqld.sock
    USER_NAME=$(id -un)
    shift 2
    case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    check) cmd_check "$@" ;;
    spawn) cmd_spawn "$@" ;;
    env-set) env_set "$@" ;;
    esac
}

main "$@"

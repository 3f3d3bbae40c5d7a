#!/usr/bin/env bash
# deps.sh — installs what building, testing and running dispatch needs; idempotent.
#
#   scripts/deps.sh          (what `make deps`, and so `make test|up|lint`, run)
#
# 1. Debian packages, checked with dpkg-query and apt-get installed when missing
#    (`apt-get update` only then).
# 2. Apache Kafka 3.9.1's jars (never 4.x: 4.0 dropped the JoinGroup versions that
#    librdkafka 2.0.2's consumer needs), fetched from Maven Central with Maven through
#    tests/infra/kafka/pom.xml into ${DISPATCH_CACHE:-$HOME/.cache/dispatch}/kafka-3.9.1/libs.
# 3. When npm exists: @redocly/cli (1.x, pinned) under the cache's npm/ (make lint's OpenAPI check).
#
# Quiet when nothing is to do: one line per thing installed otherwise.  A stamp keeps
# repeated calls at a few milliseconds while /var/lib/dpkg/status is unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DISPATCH_CACHE:-$HOME/.cache/dispatch}
KAFKA_VERSION=3.9.1
KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
KAFKA_MARKER=$KAFKA_HOME/.complete
KAFKA_JAR=$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar
NPM_PREFIX=$CACHE/npm
# Pinned: a 1.x that installs (1.34.21 names a respect-core the registry lacks).
REDOCLY_SPEC=@redocly/cli@1.34.20
STAMP=$CACHE/deps.stamp

PACKAGES=(
    build-essential pkg-config
    libmicrohttpd-dev librdkafka-dev libmariadb-dev libhiredis-dev libcjson-dev uuid-dev
    libcmocka-dev libsodium-dev libcurl4-openssl-dev
    clang-format clang-tidy cppcheck valgrind kcat
    mariadb-server mariadb-client redis-server
    default-jdk-headless maven
    python3 python3-pytest python3-yaml curl jq
    wrk nginx-light bc prometheus gnuplot-nox
    docker-compose
)
# A package counts as present when it, or one of these, is installed.
declare -A ALTERNATIVES=(
    [default-jdk-headless]="openjdk-17-jdk-headless openjdk-21-jdk-headless"
)

# What the stamp vouches for; changing this list or the pom invalidates it.
STAMP_KEY="v1 ${PACKAGES[*]} kafka-$KAFKA_VERSION npm=$(command -v npm || true) $REDOCLY_SPEC"

say() { printf 'deps: %s\n' "$*"; }
die() {
    printf 'deps: %s\n' "$*" >&2
    exit 1
}

stamp_fresh() {
    [[ -f $STAMP && -f $KAFKA_MARKER && -f $KAFKA_JAR ]] || return 1
    [[ /var/lib/dpkg/status -nt $STAMP ]] && return 1
    [[ $ROOT/tests/infra/kafka/pom.xml -nt $STAMP ]] && return 1
    local key
    IFS= read -r key <"$STAMP" || return 1
    [[ $key == "$STAMP_KEY" ]]
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@" || sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Prints the packages of PACKAGES that are not installed.
missing_packages() {
    local -A have=()
    local name status
    # One dpkg-query call for everything; unknown names only print to stderr.
    local -a alts=() query=("${PACKAGES[@]}")
    local p alt found
    for p in "${!ALTERNATIVES[@]}"; do
        read -ra alts <<<"${ALTERNATIVES[$p]}"
        query+=("${alts[@]}")
    done
    while IFS=' ' read -r name status; do
        [[ $status == ii* ]] && have[$name]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${query[@]}" 2>/dev/null || true)
    for p in "${PACKAGES[@]}"; do
        found=${have[$p]:-}
        alts=()
        [[ -n ${ALTERNATIVES[$p]:-} ]] && read -ra alts <<<"${ALTERNATIVES[$p]}"
        for alt in "${alts[@]}"; do
            [[ -n ${have[$alt]:-} ]] && found=1
        done
        [[ -n $found ]] || printf '%s\n' "$p"
    done
}

install_packages() {
    local missing=()
    mapfile -t missing < <(missing_packages)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local log
    log=$(mktemp)
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get update -q >"$log" 2>&1 ||
        ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
    local p
    for p in "${missing[@]}"; do
        say "installed $p"
    done
}

fetch_kafka() {
    [[ -f $KAFKA_MARKER && -f $KAFKA_JAR ]] && return 0
    mkdir -p "$KAFKA_HOME"
    local tmp log
    tmp=$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")
    log=$tmp.log
    if ! mvn -q -B -f "$ROOT/tests/infra/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1 ||
        [[ ! -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]]; then
        tail -n 30 "$log" >&2
        rm -rf "$tmp" "$log"
        die "fetching Apache Kafka $KAFKA_VERSION jars with Maven failed"
    fi
    rm -rf "$KAFKA_HOME/libs" "$log"
    mv "$tmp" "$KAFKA_HOME/libs"
    printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_MARKER"
    say "fetched Apache Kafka $KAFKA_VERSION jars into $KAFKA_HOME/libs"
}

# Optional: only for make lint's OpenAPI check; a failure here is not fatal.
install_redocly() {
    command -v npm >/dev/null 2>&1 || return 0
    [[ -f $NPM_PREFIX/.complete && $(<"$NPM_PREFIX/.complete") == "$REDOCLY_SPEC" ]] && return 0
    mkdir -p "$NPM_PREFIX"
    local log=$NPM_PREFIX/install.log
    if npm install --prefix "$NPM_PREFIX" --cache "$NPM_PREFIX/cache" --no-audit --no-fund \
        --loglevel=error "$REDOCLY_SPEC" >"$log" 2>&1; then
        printf '%s\n' "$REDOCLY_SPEC" >"$NPM_PREFIX/.complete"
        say "installed $REDOCLY_SPEC into $NPM_PREFIX"
    else
        say "warning: npm install $REDOCLY_SPEC failed (see $log); make lint will fetch it"
    fi
}

main() {
    stamp_fresh && return 0
    mkdir -p "$CACHE"
    # One installer at a time (make test and make up may run together).
    exec 9>"$CACHE/deps.lock"
    flock 9
    stamp_fresh && return 0
    install_packages
    fetch_kafka
    install_redocly
    printf '%s\n' "$STAMP_KEY" >"$STAMP.tmp"
    mv "$STAMP.tmp" "$STAMP"
}

main "$@"

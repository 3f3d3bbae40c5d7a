#!/usr/bin/env bash
# run.sh — the test runner behind `make test` and `make sanitize`.
#
#   BUILD=build tests/run.sh                    (after `make build-all`)
#   BUILD=build-san SANITIZE=1 tests/run.sh     (ASan+UBSan build: `make sanitize`)
#   VALGRIND=1 tests/run.sh                     (unit suites under valgrind)
#
# 1. starts a throw-away MariaDB, Redis and Kafka on free ports (tests/infra/stack.sh)
#    in the background, in a fresh temp dir that is always stopped and removed;
# 2. meanwhile runs the unit suites $BUILD/tests/unit/test_* (they need no services);
# 3. waits for the stack, exports its DISPATCH_* settings (DIR/stack.env) plus
#    DISPATCH_TEST_DIR and DISPATCH_BUILD, runs `dispatchctl migrate up` and
#    `dispatchctl topics create`;
# 4. runs the integration suites $BUILD/tests/integration/*, then the end-to-end suite
#    (pytest tests/e2e) when it has tests.
#
# Every suite runs under `timeout`: DISPATCH_UNIT_TIMEOUT=120, DISPATCH_INTEGRATION_TIMEOUT=300,
# DISPATCH_E2E_TIMEOUT=900 (seconds).  After each suite that uses the stack, a service
# that died fails that suite ("harness: kafka (pid N) died during …") and is restarted.
# Test cases are counted from cmocka's and pytest's summaries; a suite that exits
# non-zero with no failed case counted adds one failure.  The last line is always
# "N passed, N failed"; the exit status is non-zero if anything failed or nothing ran.
# DISPATCH_KEEP_TEST_DIR=1 keeps the temp dir (logs, data) for a post-mortem.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STACK=$ROOT/tests/infra/stack.sh

BUILD=${BUILD:-build}
BUILD_ABS=$(realpath -m "$BUILD")
SANITIZE=${SANITIZE:-0}
VALGRIND=${VALGRIND:-0}
UNIT_TIMEOUT=${DISPATCH_UNIT_TIMEOUT:-120}
INTEGRATION_TIMEOUT=${DISPATCH_INTEGRATION_TIMEOUT:-300}
E2E_TIMEOUT=${DISPATCH_E2E_TIMEOUT:-900}
KEEP_TEST_DIR=${DISPATCH_KEEP_TEST_DIR:-0}
PYTHON=/usr/bin/python3

# The suites see only the settings of their own stack: drop any DISPATCH_* the caller
# had (a sourced .local/stack.env would point them at `make up`'s services and ports).
while IFS= read -r var; do
    [[ $var == DISPATCH_CACHE ]] || unset "$var"
done < <(compgen -e | grep '^DISPATCH_' || true)

export CMOCKA_MESSAGE_OUTPUT=STDOUT
export PYTHONDONTWRITEBYTECODE=1
if [[ $SANITIZE == 1 ]]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}
    if [[ $VALGRIND == 1 ]]; then
        echo "run: VALGRIND=1 ignored under SANITIZE=1 (the two do not mix)"
        VALGRIND=0
    fi
fi

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dispatch-test.XXXXXX")
export DISPATCH_TEST_DIR=$TEST_DIR DISPATCH_BUILD=$BUILD_ABS
mkdir -p "$TEST_DIR/suites"

PASSED=0
FAILED=0
FAILED_SUITES=()
STACK_PID=
SUITE_PID=
STACK_UP=0
STACK_RETRIED=0
TORN_DOWN=0

now() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
elapsed() {
    local us=$(($(now) - $1))
    printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000))
}

# Stops whatever runs (a suite, the stack start, the stack) and removes the temp dir;
# quiet on success so that the summary stays the last line.
teardown() {
    ((TORN_DOWN)) && return 0
    TORN_DOWN=1
    if [[ -n $SUITE_PID ]]; then
        # The suite's `timeout` (child of the subshell) passes TERM on to the whole suite.
        pkill -TERM -P "$SUITE_PID" 2>/dev/null || true
        wait "$SUITE_PID" 2>/dev/null || true
    fi
    if [[ -n $STACK_PID ]]; then
        # stack.sh start runs in its own process group (setsid): end all of it.
        kill -TERM -- "-$STACK_PID" 2>/dev/null || true
        wait "$STACK_PID" 2>/dev/null || true
    fi
    if ! "$STACK" stop "$TEST_DIR" >"$TEST_DIR/stack-stop.log" 2>&1; then
        echo "run: stopping the stack failed:" >&2
        cat "$TEST_DIR/stack-stop.log" >&2
    fi
    if [[ $KEEP_TEST_DIR == 1 ]]; then
        echo "run: kept $TEST_DIR" >&2
    else
        rm -rf "$TEST_DIR"
    fi
}
on_exit() {
    local rc=$?
    trap '' INT TERM
    teardown
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

record_failure() { # SUITE [COUNT]
    FAILED=$((FAILED + ${2:-1}))
    FAILED_SUITES+=("$1")
}

# count_cases KIND FILE: sets CASES_PASSED/CASES_FAILED from cmocka's or pytest's summary.
count_cases() {
    CASES_PASSED=0
    CASES_FAILED=0
    local kind=$1 file=$2 line
    if [[ $kind == pytest ]]; then
        local summary='' part n word
        while IFS= read -r line; do
            [[ $line =~ (passed|failed|error|skipped|deselected|no\ tests\ ran).*\ in\ [0-9.]+s ]] &&
                summary=$line
        done <"$file"
        summary=${summary//=/}
        summary=${summary% in *}
        IFS=',' read -ra parts <<<"$summary"
        for part in "${parts[@]}"; do
            read -r n word _ <<<"$part"
            [[ $n =~ ^[0-9]+$ ]] || continue
            case $word in
            passed) CASES_PASSED=$((CASES_PASSED + n)) ;;
            failed | error | errors) CASES_FAILED=$((CASES_FAILED + n)) ;;
            esac
        done
        return 0
    fi
    local re_pass='^\[  PASSED  \] ([0-9]+) test\(s\)\.'
    local re_fail='^\[  FAILED  \] ([0-9]+) test\(s\), listed below'
    while IFS= read -r line; do
        if [[ $line =~ $re_pass ]]; then
            CASES_PASSED=$((CASES_PASSED + BASH_REMATCH[1]))
        elif [[ $line =~ $re_fail ]]; then
            CASES_FAILED=$((CASES_FAILED + BASH_REMATCH[1]))
        fi
    done <"$file"
}

# run_suite KIND NAME TIMEOUT CMD...: streams the output, counts the cases.
run_suite() {
    local kind=$1 name=$2 limit=$3
    shift 3
    local out t0 rc=0
    out=$TEST_DIR/suites/${name//\//_}.out
    printf '\n=== %s\n' "$name"
    t0=$(now)
    : >"$out"
    touch "$TEST_DIR/suites/.start"
    # In a subshell that waits, so that bash's own word on a fatal signal ("Segmentation
    # fault") lands in the suite's output, not after the summary line.
    (
        set +e
        timeout -k 10 "$limit" "$@" </dev/null
        exit $?
    ) >"$out" 2>&1 &
    SUITE_PID=$!
    tail -n +1 -s 0.1 -f --pid="$SUITE_PID" "$out" || true
    wait "$SUITE_PID" || rc=$?
    SUITE_PID=
    count_cases "$kind" "$out"
    local note=''
    if ((rc == 124 || rc == 137)); then
        note=" (timed out after $limit s)"
    elif ((rc > 128)); then
        note=" (killed by signal $((rc - 128)))"
    elif ((rc != 0)); then
        note=" (exit $rc)"
    fi
    # pytest's 5 is "no tests collected": nothing ran, nothing failed.
    if ((rc != 0 && CASES_FAILED == 0)) && ! [[ $kind == pytest && $rc == 5 ]]; then
        CASES_FAILED=1
    fi
    if [[ $kind != unit ]] && ! harness_check "$name"; then
        ((CASES_FAILED > 0)) || CASES_FAILED=1
        note+=" (a service died)"
    fi
    PASSED=$((PASSED + CASES_PASSED))
    ((CASES_FAILED == 0)) || record_failure "$name" "$CASES_FAILED"
    ((CASES_FAILED == 0)) || show_logs "$out"
    printf -- '--- %s: %d passed, %d failed in %s s%s\n' \
        "$name" "$CASES_PASSED" "$CASES_FAILED" "$(elapsed "$t0")" "$note"
}

# show_logs MARKER: the tails of the logs a failed suite left in DISPATCH_TEST_DIR
# (e.g. the e2e fixtures' e2e-producer.log), so that CI shows why a server went away.
show_logs() {
    local f
    while IFS= read -r -d '' f; do
        printf -- '--- last lines of %s:\n' "$f"
        tail -n 15 "$f" | sed 's/^/    /'
    done < <(find "$TEST_DIR" -maxdepth 1 -name '*.log' -newer "$TEST_DIR/suites/.start" -print0)
}

# After a suite: a dead service fails it and is started again for the next suites.
harness_check() {
    local report line
    report=$("$STACK" check "$TEST_DIR") && return 0
    while IFS= read -r line; do
        printf '%s died during %s\n' "${line% is not running*}" "$1"
    done <<<"$report"
    echo "harness: restarting the stack"
    start_stack
    wait_stack || echo "harness: the remaining suites are not run"
    return 1
}

# In the background and in its own process group, so that teardown can end all of it.
start_stack() {
    : >"$TEST_DIR/stack-start.log"
    setsid "$STACK" start "$TEST_DIR" >"$TEST_DIR/stack-start.log" 2>&1 </dev/null &
    STACK_PID=$!
}

run_unit() {
    local bin wrap=()
    [[ $VALGRIND == 1 ]] && wrap=(valgrind -q --leak-check=full --error-exitcode=1)
    local bins=()
    for bin in "$BUILD"/tests/unit/test_*; do
        [[ -f $bin && -x $bin ]] && bins+=("$bin")
    done
    if ((${#bins[@]} == 0)); then
        echo "run: no unit suites in $BUILD/tests/unit"
        return 0
    fi
    for bin in "${bins[@]}"; do
        run_suite unit "unit/$(basename "$bin")" "$UNIT_TIMEOUT" "${wrap[@]}" "$bin"
    done
}

wait_stack() {
    local rc=0
    wait "$STACK_PID" || rc=$?
    STACK_PID=
    if ((rc != 0)) && ((!STACK_RETRIED)); then
        # a service that dies while starting on a loaded machine gets one more try,
        # said out loud; a second failure fails the run
        STACK_RETRIED=1
        echo
        echo "harness: the stack failed to start; trying once more:"
        sed 's/^/    /' "$TEST_DIR/stack-start.log"
        "$STACK" stop "$TEST_DIR" >/dev/null 2>&1 || true
        start_stack
        wait_stack
        return
    fi
    if ((rc != 0)); then
        echo
        echo "harness: the stack (MariaDB, Redis, Kafka) failed to start:"
        sed 's/^/    /' "$TEST_DIR/stack-start.log"
        record_failure harness
        STACK_UP=0
        return 1
    fi
    grep '^stack: ready' "$TEST_DIR/stack-start.log" | sed 's/^stack:/run: stack/' || true
    local line
    while IFS= read -r line; do
        [[ $line == DISPATCH_*=* ]] && export "${line?}"
    done <"$TEST_DIR/stack.env"
    STACK_UP=1
}

# setup STEP ARGS...: one dispatchctl call that must succeed.
setup() {
    local step=$1 out=$TEST_DIR/suites/setup.out rc=0
    shift
    printf '\n=== setup: dispatchctl %s\n' "$*"
    timeout -k 5 60 "$BUILD/bin/dispatchctl" --config "$TEST_DIR/stack.env" "$@" >"$out" 2>&1 \
        </dev/null || rc=$?
    cat "$out"
    if ((rc != 0)); then
        echo "run: dispatchctl $* failed (exit $rc); integration and end-to-end suites not run"
        record_failure "setup: $step"
        return 1
    fi
}

run_stack_suites() {
    if [[ ! -x $BUILD/bin/dispatchctl ]]; then
        echo
        echo "run: $BUILD/bin/dispatchctl is missing (build it: make all);" \
            "integration and end-to-end suites not run"
        record_failure "setup: dispatchctl missing"
        return 0
    fi
    setup migrate --migrations-dir migrations migrate up || return 0
    setup topics topics create || return 0

    local bin
    for bin in "$BUILD"/tests/integration/*; do
        [[ -f $bin && -x $bin ]] || continue
        ((STACK_UP)) || return 0
        run_suite integration "integration/$(basename "$bin")" "$INTEGRATION_TIMEOUT" "$bin"
    done

    ((STACK_UP)) || return 0
    if [[ -n $(find tests/e2e -name 'test_*.py' -print -quit 2>/dev/null) ]]; then
        run_suite pytest e2e "$E2E_TIMEOUT" \
            "$PYTHON" -m pytest -q -p no:cacheprovider tests/e2e
    else
        echo
        echo "run: no end-to-end tests in tests/e2e"
    fi
}

main() {
    echo "run: starting MariaDB, Redis and Kafka in $TEST_DIR (in the background)"
    start_stack

    run_unit
    if wait_stack; then
        run_stack_suites
    fi

    teardown
    echo
    if ((${#FAILED_SUITES[@]} > 0)); then
        echo "run: failed: ${FAILED_SUITES[*]}"
    fi
    if ((PASSED + FAILED == 0)); then
        echo "run: no test ran"
    fi
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0 && PASSED > 0))
}

main "$@"

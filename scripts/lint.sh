#!/usr/bin/env bash
# lint.sh — `make lint`: every static check, one line each (ok / FAILED / skipped), the
# findings of a failed check after it; exit status non-zero if any check failed.
#
#   clang-format   --dry-run --Werror on every .c/.h (committed or not, unless ignored)
#   clang-tidy     every .c, with .clang-tidy's checks (warnings are errors), 2 at a time
#   cppcheck       warning, performance, portability
#   banned         calls of sprintf vsprintf strcpy strcat strncpy strtok atoi atol gets
#                  (a line with "lint:allow-banned" is let through)
#   bash -n        syntax of every shell script (shellcheck is not installed here)
#   openapi        api/openapi.yaml with Redocly CLI 1.x (scripts/deps.sh installs it)
#   compose        docker/compose.yaml with `docker-compose config -q`, if installed
#   alerts         docs/alerts.yml with `promtool check rules`, and its unit tests
#                  tests/alerts/alerts_test.yml (`promtool test rules`), if promtool is
#                  installed (Debian package prometheus)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${DISPATCH_CACHE:-$HOME/.cache/dispatch}
REDOCLY=$CACHE/npm/node_modules/.bin/redocly
REDOCLY_SPEC=@redocly/cli@1.34.20 # keep in step with scripts/deps.sh
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

FAILED=()

# check NAME CMD...: runs CMD with its output to a file; prints it only on failure.
check() {
    local name=$1
    shift
    if "$@" >"$OUT/$name.log" 2>&1; then
        printf '%-13s ok\n' "$name"
    else
        printf '%-13s FAILED\n' "$name"
        sed 's/^/    /' "$OUT/$name.log"
        FAILED+=("$name")
    fi
}
skip() { printf '%-13s skipped (%s)\n' "$1" "$2"; }

# Every tracked or new (not ignored) file matching the patterns that still exists.
files() {
    local f
    while IFS= read -r -d '' f; do
        [[ -f $f ]] && printf '%s\0' "$f"
    done < <(git ls-files -z --cached --others --exclude-standard -- "$@" | sort -zu)
}

mapfile -d '' -t SOURCES < <(files '*.c' '*.h')
mapfile -d '' -t C_FILES < <(files '*.c')
mapfile -d '' -t SCRIPTS < <(files '*.sh' '.ci/run')

run_clang_tidy() {
    local rc=0
    printf '%s\0' "${C_FILES[@]}" | xargs -0 -I{} -P2 clang-tidy --quiet {} \
        -- -std=c17 -D_GNU_SOURCE -DDISPATCH_VERSION=\"lint\" -Iinternal -Ipkg -Itests -I/usr/include/mariadb \
        >"$OUT/clang-tidy.raw" 2>&1 || rc=$?
    # Drop the per-file "N warnings generated." counts (of system headers, not shown).
    grep -vE '^[0-9]+ (warnings?|errors?)( and [0-9]+ errors?)? generated\.$' \
        "$OUT/clang-tidy.raw" || true
    return "$rc"
}

run_cppcheck() {
    cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
        --quiet -j 2 -D_GNU_SOURCE -I internal -I pkg "${C_FILES[@]}"
}

# Whole-word calls only: snprintf, strtok_r or fgets do not match.
run_banned() {
    local re='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|atol|gets)[[:space:]]*\('
    if grep -nE "$re" -- "${SOURCES[@]}" | grep -v 'lint:allow-banned'; then
        echo "banned function(s) above: use snprintf, memcpy with a length, strtol, ..."
        return 1
    fi
    return 0
}

run_bash_n() {
    local f rc=0
    for f in "${SCRIPTS[@]}"; do
        bash -n "$f" || rc=1
    done
    return "$rc"
}

run_redocly() {
    export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
    if [[ -x $REDOCLY ]]; then
        "$REDOCLY" lint api/openapi.yaml
    else
        npm_config_cache=$CACHE/npm/cache npx --yes "$REDOCLY_SPEC" lint api/openapi.yaml
    fi
}

if ((${#SOURCES[@]} == 0)); then
    skip clang-format "no C sources"
else
    check clang-format clang-format --dry-run --Werror "${SOURCES[@]}"
fi
if ((${#C_FILES[@]} == 0)); then
    skip clang-tidy "no .c files"
    skip cppcheck "no .c files"
else
    check clang-tidy run_clang_tidy
    check cppcheck run_cppcheck
fi
if ((${#SOURCES[@]} == 0)); then
    skip banned "no C sources"
else
    check banned run_banned
fi
check bash-n run_bash_n

if [[ ! -f api/openapi.yaml ]]; then
    skip openapi "no api/openapi.yaml"
elif [[ ! -x $REDOCLY ]] && ! command -v npx >/dev/null 2>&1; then
    skip openapi "neither Redocly CLI nor npx is installed"
else
    check openapi run_redocly
fi

if [[ ! -f docker/compose.yaml ]]; then
    skip compose "no docker/compose.yaml"
elif ! command -v docker-compose >/dev/null 2>&1; then
    skip compose "docker-compose not installed: apt-get install docker-compose"
else
    # the file refuses to interpolate without a JWT secret: validate it with a
    # throw-away one (tests/e2e/test_protection_edge.py checks the refusal)
    check compose env DISPATCH_JWT_SECRET=lint-only-not-a-secret-0123456789abcdef \
        docker-compose -f docker/compose.yaml config -q
fi

if [[ ! -f docs/alerts.yml ]]; then
    skip alerts "no docs/alerts.yml"
elif ! command -v promtool >/dev/null 2>&1; then
    skip alerts "promtool not installed: apt-get install prometheus"
else
    check alerts bash -c 'promtool check rules docs/alerts.yml &&
        promtool test rules tests/alerts/alerts_test.yml'
fi

if ((${#FAILED[@]} > 0)); then
    echo "lint: FAILED: ${FAILED[*]}"
    exit 1
fi
echo "lint: ok"

#!/usr/bin/env bash
# One entry point that sets itself up: creates .venv with Python >= 3.11 on first use and
# reinstalls dependencies whenever pyproject.toml changes.
#   ./dev.sh run [ARGS]    the daemon on ./monitor.toml (health-monitor run ARGS)
#   ./dev.sh test [ARGS]   the whole test suite (pytest ARGS)
#   ./dev.sh lint          ruff
#   ./dev.sh bench [NAME [ARGS]]  every benchmark under bench/, or bench/bench_NAME.py with ARGS
#   ./dev.sh cli ARGS      any other health-monitor command
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "dev.sh: Python 3.11 or newer is required" >&2
    exit 1
}

setup() {
    if [ ! -x .venv/bin/python ]; then
        "$(find_python)" -m venv .venv
    fi
    local wanted
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e '.[test]'
        echo "$wanted" > .venv/.setup-stamp
    fi
}

# The real peers the tests start themselves: PostgreSQL and PgBouncer, Prometheus and promtool, Alertmanager
# and amtool, systemd-analyze, headless Chromium, and for the deploy tests a Docker engine and
# docker-compose, debootstrap and systemd-nspawn, from Debian's packages.
system_packages() {
    local missing=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "dev.sh: installing ${missing[*]} (Debian packages the tests need)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "dev.sh: the tests need these Debian packages: ${missing[*]} (apt-get install them as root)" >&2
    fi
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    run) setup; exec .venv/bin/health-monitor run "$@" ;;
    test) setup; system_packages; exec .venv/bin/pytest "$@" ;;
    lint) setup; exec .venv/bin/ruff check . ;;
    bench)
        setup
        if [ $# -gt 0 ]; then name=$1; shift; exec .venv/bin/python "bench/bench_$name.py" "$@"; fi
        for b in bench/bench_*.py; do .venv/bin/python "$b"; done ;;
    cli) setup; exec .venv/bin/health-monitor "$@" ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac

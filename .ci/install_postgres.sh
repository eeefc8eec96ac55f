#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the sweep storage test (tests/test_sweep.py starts a throw-away
# server of its own on a Unix socket in /tmp, as the 'postgres' user the package creates, and stops it).
# Idempotent: does nothing when initdb is already there. Never fails CI: without the server (or without
# the psycopg driver) that one test skips with a message.
set -uo pipefail

if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "install_postgres: $(ls -d /usr/lib/postgresql/*/ 2>/dev/null | head -1) already installed"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
if timeout 300 $SUDO apt-get update -q && timeout 300 $SUDO apt-get install -y -q --no-install-recommends postgresql; then
    echo "install_postgres: installed in $(( $(date +%s) - start )) s: $(ls -d /usr/lib/postgresql/*/ | head -1)"
else
    echo "install_postgres: could not install postgresql; the PostgreSQL sweep test will skip"
fi
exit 0

#!/usr/bin/env bash
# Audits the Python packages installed in the project's venv for known vulnerabilities with
# pip-audit; our own editable package (mpac) is left out. Waivers: scripts/audit_ignore.txt.
#
#   scripts/audit_dependencies.sh [--service pypi|osv] [--allow-unavailable]
#
# Exit: 0 all checked, nothing known; 1 a known vulnerability; 2 bad usage or ignore list;
# 3 the audit could not be done or is incomplete (vulnerability service unreachable), which
# --allow-unavailable turns into 0 with a warning.
#
# pip-audit runs from a venv of its own: installed into .venv, its dependencies (requests, rich,
# CacheControl, ...) would be audited as the project's and could move versions the project uses.
# MPAC_AUDIT_PYTHON names another environment to audit, MPAC_AUDIT_TOOL_VENV another tool venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_AUDIT_VERSION=2.10.1
target=${MPAC_AUDIT_PYTHON:-.venv/bin/python}
tool_venv=${MPAC_AUDIT_TOOL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mpac/pip-audit-$PIP_AUDIT_VERSION}

if [[ ! -x $target ]]; then
    echo "audit_dependencies: no environment at $target (make install-dev first)" >&2
    exit 2
fi
if [[ ! -x $tool_venv/bin/pip-audit ]]; then
    echo "audit_dependencies: installing pip-audit $PIP_AUDIT_VERSION into $tool_venv" >&2
    log=$(mktemp)
    # pip's output only when it fails: a machine's index settings can make it chatty.
    if ! { python3 -m venv "$tool_venv" &&
        "$tool_venv/bin/pip" install --disable-pip-version-check "pip-audit==$PIP_AUDIT_VERSION"; } \
        >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "audit_dependencies: could not install pip-audit" >&2
        exit 2
    fi
    rm -f "$log"
fi
exec "$tool_venv/bin/python" scripts/audit_dependencies.py \
    --pip-audit "$tool_venv/bin/pip-audit" --python "$target" "$@"

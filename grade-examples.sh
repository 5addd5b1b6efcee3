#!/usr/bin/env bash
# Main job: release, collect the bundled example submissions, autograde, feedback, export, score table.
# Offline and on the CPU; sets up .venv first when needed.
source "$(dirname "$0")/scripts/venv.sh"
exec .venv/bin/python -m coursekit grade-examples "$@"

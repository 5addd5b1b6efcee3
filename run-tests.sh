#!/usr/bin/env bash
# The test suite (pytest); sets up .venv first when needed.  Extra arguments go to pytest.
source "$(dirname "$0")/scripts/venv.sh"
exec .venv/bin/python -m pytest "$@"

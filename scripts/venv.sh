# Sourced by the README's commands: create .venv if it is missing and install the pinned
# requirements and the kit into it (again only when requirements.txt or pyproject.toml changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            python=$candidate
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "error: Python 3.11 is needed (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

# Submissions are executed inside a bubblewrap sandbox (see coursekit/sandbox.py).
if ! command -v bwrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing bubblewrap (the sandbox that runs student notebooks)"
        (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }) \
            || echo "warning: could not install bubblewrap; grade with --no-sandbox only on trusted notebooks" >&2
    else
        echo "warning: bubblewrap (bwrap) is missing: install it (apt install bubblewrap) to grade in the sandbox" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment .venv with $python"
    "$python" -m venv .venv
fi
stamp=.venv/.coursekit-installed
if ! cat requirements.txt pyproject.toml | cmp -s - "$stamp"; then
    echo "Installing the pinned requirements into .venv (torch is large: a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
    cat requirements.txt pyproject.toml > "$stamp"
fi
.venv/bin/python -m coursekit check-env >/dev/null

#!/usr/bin/env bash
# `npm start`: installs on first run, then runs the all-in-one deployment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec node bin/vbs.js up "$@"

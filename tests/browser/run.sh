#!/usr/bin/env bash
# meson test 'dashboard': the browser test (dashboard_test.mjs), or exit 77
# (skipped) when node, Chromium or playwright-core is missing
# (scripts/setup.sh --tests installs them).
#   run.sh LAB_EXE SCREENSHOT.png [LAB_ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null; then
  echo "SKIP: node is not installed"
  exit 77
fi
if (($(node -p 'process.versions.node.split(".")[0]') < 20)); then
  echo "SKIP: playwright-core needs node 20 or newer, this is $(node --version)"
  exit 77
fi
if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
  echo "SKIP: no Chromium at ${CHROMIUM:-/usr/bin/chromium}"
  exit 77
fi
if [[ ! -d $here/node_modules/playwright-core ]]; then
  echo "SKIP: playwright-core is not installed in $here/node_modules (npm ci there)"
  exit 77
fi
exec node "$here/dashboard_test.mjs" "$@"

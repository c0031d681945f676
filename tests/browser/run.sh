#!/usr/bin/env bash
# meson test 'dashboard': the browser test (dashboard_test.mjs), or exit 77
# (skipped) when node, Chromium or playwright-core is missing
# (scripts/setup.sh --tests installs them). scripts/test.sh, which installs
# them first, sets RINGFLOW_REQUIRE_BROWSER=1: there a missing piece fails
# the test instead of skipping it.
#   run.sh LAB_EXE SCREENSHOT.png [LAB_ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
skip() {
  if [[ ${RINGFLOW_REQUIRE_BROWSER:-0} == 1 ]]; then
    echo "FAIL (RINGFLOW_REQUIRE_BROWSER=1): $*"
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}
if ! command -v node >/dev/null; then
  skip "node is not installed"
fi
if (($(node -p 'process.versions.node.split(".")[0]') < 18)); then
  skip "playwright-core needs node 18 or newer, this is $(node --version)"
fi
if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
  skip "no Chromium at ${CHROMIUM:-/usr/bin/chromium}"
fi
if [[ ! -d $here/node_modules/playwright-core ]]; then
  skip "playwright-core is not installed in $here/node_modules (npm ci there)"
fi
exec node "$here/dashboard_test.mjs" "$@"

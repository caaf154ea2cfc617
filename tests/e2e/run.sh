#!/usr/bin/env bash
# Runs every end-to-end test (tests/e2e/*.sh but this one), each bounded in time
# ($FVS_E2E_TIMEOUT, 300 s, or the test's own `# e2e-timeout: N` header line when larger), and
# prints one closing line: "e2e: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"
limit=${FVS_E2E_TIMEOUT:-300}
passed=0 failed=0
for t in *.sh; do
  [ "$t" = run.sh ] && continue
  start=$(date +%s)
  own=$(sed -n 's/^# e2e-timeout: \([0-9][0-9]*\)$/\1/p' "$t" | head -1)
  t_limit=$limit
  [ -n "$own" ] && [ "$own" -gt "$limit" ] && t_limit=$own
  if timeout --kill-after=10 "$t_limit" bash "$t"; then
    passed=$((passed + 1)); echo "PASS $t ($(( $(date +%s) - start )) s)"
  else
    failed=$((failed + 1)); echo "FAIL $t ($(( $(date +%s) - start )) s)"
  fi
done
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]

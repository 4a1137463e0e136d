#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each.
# FUZZTIME (default 15s) bounds each target; the seed corpora come from the
# golden vectors in testdata/.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-15s}
cd "$(dirname "$0")/.."
status=0
for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($FUZZTIME)"
    if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      status=1
    fi
  done
done
exit $status

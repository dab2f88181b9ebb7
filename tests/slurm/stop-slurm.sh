#!/usr/bin/env bash
# Stop the daemons start-slurm.sh started (by their PID files, in reverse order) and remove the
# fake GPU device nodes it created. Nothing else is touched.
set -uo pipefail
STATE=${STATE:?set STATE to the directory start-slurm.sh used}
[ -f "$STATE/pids" ] && tac "$STATE/pids" | while read -r f; do
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
done
[ -f "$STATE/devices" ] && xargs -r rm -f < "$STATE/devices"
rm -f "$STATE/pids" "$STATE/devices"
rmdir "$STATE" 2>/dev/null || true

#!/usr/bin/env bash
# The console's page times under load: starts `jiancha up` (embedded broker, no
# simulator), publishes N simulated items submitted over the last weeks (what has
# happened by now), waits until the monitor and the accountability queue are done with
# them, then runs console-load (every page, --requests times) and the live-board soak.
#   ./loadtests/run-console.sh [--items 100000] [--requests 30] [--board-minutes 10]
#                              [--first-day-ago 45] [--spread-days 30] [--partitions 32]
# Items are submitted from --first-day-ago days ago over --spread-days working days: a
# later, shorter window leaves more of them open.
set -euo pipefail
cd "$(dirname "$0")/.."
items=100000
requests=30
board_minutes=10
first_day_ago=45
spread_days=30
partitions=32
while [ $# -gt 0 ]; do
    case "$1" in
        --items) items=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --board-minutes) board_minutes=$2; shift 2 ;;
        --first-day-ago) first_day_ago=$2; shift 2 ;;
        --spread-days) spread_days=$2; shift 2 ;;
        --partitions) partitions=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
cargo build --release -q -p jiancha --bin jiancha
cargo build --release -q -p jiancha-loadtest --bin console-load
J=target/release/jiancha
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
# The accountability service limits each caller to 50 requests/s; walking every page of
# the case list as one user would be refused past it. The embedded broker keeps about
# 5 MB a partition and drops older records past that: give it enough partitions for the
# stream (32 hold 100 000 items' events).
printf 'metrics_listen = "127.0.0.1:0"\npartitions = %d\n[accountability]\nlisten = "127.0.0.1:0"\nrequests_per_caller = 100000.0\nburst_per_caller = 100000.0\n' "$partitions" > "$dir/jiancha.toml"
"$J" up --no-simulator --state-dir "$dir/state" --config "$dir/jiancha.toml" --grpc-listen 127.0.0.1:0 \
    --console-listen 127.0.0.1:0 > "$dir/up.out" 2> "$dir/up.log" &
pid=$!
for _ in $(seq 120); do grep -q '^console: ' "$dir/up.out" && break; sleep 1; done
bootstrap=$(sed -n 's/^kafka bootstrap: //p' "$dir/up.out")
console=$(sed -n 's/^console: //p' "$dir/up.out")
echo "console $console, broker $bootstrap"

first_day=$(date -d "-$first_day_ago days" +%F)
"$J" simulate --catalog deploy/demo/catalog.toml --items "$items" --seed 11 --first-day "$first_day" --spread-days "$spread_days" > "$dir/all.jsonl"
# What has happened by now (the rest lies in the future of these items).
python3 - "$dir/all.jsonl" "$dir/events.jsonl" <<'PY'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc)
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        try:
            e = json.loads(line)
            at = datetime.datetime.fromisoformat(e.get("received_at") or e["occurred_at"])
        except Exception:
            continue
        if at <= now:
            out.write(line)
PY
echo "events: $(wc -l < "$dir/events.jsonl") of $(wc -l < "$dir/all.jsonl") have happened by now"
started=$(date +%s)
"$J" produce --kafka-bootstrap "$bootstrap" --file "$dir/events.jsonl" --skip-invalid
# Done when the monitor has consumed every event and the accountability queue has
# opened no case for 15 s (both read from the process's metrics).
metrics=$(sed -n 's/^metrics: //p' "$dir/up.out")
metric() { curl -s "$metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d", s }'; }
sent=$(wc -l < "$dir/events.jsonl")
# Every record read (valid, duplicates included, or dead-lettered) and no lag left; a
# broker that dropped records (too few partitions) is reported after 15 minutes.
consumed() { echo $(( $(metric jiancha_events_consumed_total) + $(metric jiancha_events_invalid_total) )); }
deadline=$(( $(date +%s) + 900 ))
until [ "$(consumed)" -ge "$sent" ] && [ "$(metric jiancha_consumer_lag)" -eq 0 ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "warning: only $(consumed) of $sent events were read: the embedded broker dropped records; use more --partitions" >&2
        break
    fi
    sleep 2
done
echo "monitor: $(consumed) of $sent events read after $(( $(date +%s) - started )) s; items $(metric jiancha_items), open $(metric jiancha_open_items), alert updates $(metric jiancha_alerts_total)"
last=-1
while :; do
    n=$(metric jiancha_cases_opened_total)
    [ "$n" -eq "$last" ] && break
    last=$n
    sleep 15
done
echo "accountability: $last cases opened"
link=$("$J" console login --role INSPECTOR --state-dir "$dir/state")
target/release/console-load --link "$link" --requests "$requests" --count
echo "resident memory of the up process: $(ps -o rss= -p "$pid" | awk '{printf "%.0f MiB", $1/1024}')"
if [ "$board_minutes" -gt 0 ]; then
    link=$("$J" console login --role INSPECTOR --state-dir "$dir/state")
    node loadtests/console-board.mjs "$link" "$board_minutes" "$J" "$bootstrap"
fi

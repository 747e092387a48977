#!/usr/bin/env bash
# Starts a Tansu broker on a free loopback port with sqlite storage in a temp dir,
# runs a load program against it, and stops the broker. The first argument may name the
# program (restore-load, the default, or grpc-load); the rest go to it
# (for example: --restore-items 1000000, or: grpc-load --events 5000).
# The operators' load test needs none of this: `jiancha loadtest --broker tansu` starts its own.
set -euo pipefail
cd "$(dirname "$0")/.."
TANSU="${JIANCHA_TANSU:-$HOME/.cache/jiancha/tansu/bin/tansu}"
[ -x "$TANSU" ] || { echo "Tansu not found at $TANSU: run ./scripts/test once (it installs it)" >&2; exit 1; }
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$dir" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine sqlite://broker.db > broker.log 2>&1) &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
bin=restore-load
case "${1:-}" in restore-load|grpc-load) bin=$1; shift ;; esac
cargo run --release -q -p jiancha-loadtest --bin "$bin" -- --kafka-bootstrap "127.0.0.1:$port" "$@"

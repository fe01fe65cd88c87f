#!/usr/bin/env bash
# Runs the workerd MobileNetV2 bench on a quiet machine that has no node_modules.
# Prepare here (from the repository root):
#   OUT=bench/out/workerd-device; mkdir -p $OUT
#   npx esbuild bench/workerd/device-worker.ts --bundle --format=esm --platform=browser --target=es2022 --minify \
#     --external:'*.wasm' --outfile=$OUT/worker.js
#   cp bench/workerd/device.capnp $OUT/config.capnp
#   cp node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm $OUT/
#   gzip -6 -c node_modules/@cloudflare/workerd-linux-64/bin/workerd > $OUT/workerd.gz
# Then there: bash bench/workerd/device-run.sh bench/out/workerd-device [rounds]
set -euo pipefail
dir=${1:-bench/out/workerd-device}
rounds=${2:-30}
work=$(mktemp -d)
cp "$dir"/worker.js "$dir"/config.capnp "$dir"/tfjs-backend-wasm-simd.wasm "$work"/
gunzip -c "$dir"/workerd.gz > "$work"/workerd && chmod +x "$work"/workerd
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$work"
./workerd serve config.capnp > workerd.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:8787/ && break; sleep 0.5; done
echo "setup: $(curl -s -w ' [request %{time_total}s]' http://127.0.0.1:8787/setup)"
echo "bench: $(curl -s -w ' [request %{time_total}s]' "http://127.0.0.1:8787/bench?rounds=$rounds")"
echo "workerd log:"; tail -5 workerd.log

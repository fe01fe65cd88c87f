# Serves bench/workerd/device-worker.ts (bundled to worker.js by device-run.sh's caller) on 127.0.0.1:8787.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .bench)],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const bench :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm", wasm = embed "tfjs-backend-wasm-simd.wasm"),
  ],
  compatibilityDate = "2026-04-01",
);

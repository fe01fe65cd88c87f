#!/usr/bin/env node
// The `edgetune` command (package.json `bin`): runs the TypeScript CLI through tsx's loader, so a clone needs no
// build step (`npx edgetune ...`).
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");

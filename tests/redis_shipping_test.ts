/**
 * The Redis collections backend reaches the nodes only with pools that use
 * it: the library's bundle for such a pool holds the backend's module and
 * the nodes get `npm:ioredis` and its dependencies (with their lockfile
 * entries, so that the worker loads it under `--cached-only --frozen`); the
 * worker's own bundle holds neither.
 */
import assert from "node:assert/strict";
import { libraryBundle } from "../src/bootstrap/worker.ts";
import { buildBundle } from "../src/bootstrap/bundle.ts";
import { nodeCode } from "../src/bootstrap/stage.ts";
import { tempRoot } from "./helpers.ts";

const BACKEND = new URL("../src/collections/redis_backend.ts", import.meta.url);

Deno.test("a pool on Redis ships the backend and npm:ioredis to its nodes; a pool without it ships neither", async () => {
  const dir = await tempRoot();
  await Deno.writeTextFile(`${dir}/main.ts`, `export const one = 1;\n`);
  const code = await buildBundle([`file://${dir}/main.ts`]);

  const plain = await nodeCode(code, await libraryBundle());
  const plainLib = await libraryBundle();
  assert.ok(!plainLib.files.some((f) => f.path.endsWith("redis_backend.ts")));
  assert.deepEqual(
    plain.node.packages.filter((p) => p.name === "ioredis"),
    [],
  );

  const lib = await libraryBundle([BACKEND.href]);
  assert.ok(
    lib.files.some((f) => f.path.endsWith("src/collections/redis_backend.ts")),
  );
  const shipped = await nodeCode(code, lib);
  const names = shipped.node.packages.map((p) => p.name);
  assert.ok(names.includes("ioredis"), names.join(" "));
  assert.ok(names.includes("@ioredis/commands"), names.join(" "));
  const lock = shipped.files.find((f) => f.path.endsWith("deno.lock"));
  assert.ok(lock, "no lockfile shipped");
  assert.match(new TextDecoder().decode(lock.data), /"ioredis@6\.1\.0"/);
});

// What sandboxes share, exactly as the README's threat model says.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  measure,
  measureAlone,
  measureWithEnv,
  patch,
  patchAlone,
} from "./fixtures/sharing.ts";
import { tempRoot } from "./helpers.ts";

async function start() {
  return await sky.ComputePool.start({
    provider: sky.Local({ root: await tempRoot() }),
    console: "silent",
  });
}

Deno.test("each compute has sandboxes of its own: one's patch of a built-in never changes another's results", async () => {
  await using pool = await start();
  assert.equal(await pool.run(measure()), 1.5);
  assert.equal(await pool.run(patch()), true);
  // Another compute of the same module and permission set: another realm.
  assert.equal(await pool.run(measure()), 1.5);
  // Another permission set of the same module is another sandbox too.
  assert.equal(await pool.run(measureWithEnv()), 1.5);
});

Deno.test('isolation: "task" shares nothing: each task gets a fresh sandbox', async () => {
  await using pool = await start();
  assert.equal(await pool.run(patchAlone()), true);
  // Neither the shared sandbox of its module and permissions...
  assert.equal(await pool.run(measure()), 1.5);
  // ...nor a later task of its own sees the patch...
  assert.equal(await pool.run(measureAlone()), 1.5);
  // ...and a patch in a shared sandbox reaches neither.
  assert.equal(await pool.run(patch()), true);
  assert.equal(await pool.run(measure()), 1.5);
  assert.equal(await pool.run(measureAlone()), 1.5);
});

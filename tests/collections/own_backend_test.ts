/**
 * A collections option whose workers open a backend of their own (as Redis
 * does): the tasks' calls go to it, not to the client.
 */
import assert from "node:assert/strict";
import * as sky from "../../mod.ts";
import { EmbeddedBackend } from "../../src/collections/embedded.ts";
import { tempRoot } from "../helpers.ts";
import { counterValue } from "./computes.ts";

const root = await tempRoot();

Deno.test("a backend the workers open for themselves gets the tasks' calls", async () => {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root }),
    console: "silent",
    collections: {
      kind: "test",
      open: () => Promise.resolve(new EmbeddedBackend()),
      worker: () => ({
        module: "../tests/collections/own_backend.ts",
        config: { value: 42 },
      }),
    },
  });
  assert.equal(await pool.run(counterValue("n")), 42);
  assert.equal(await pool.counter("n").value(), 0);
});

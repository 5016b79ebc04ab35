/**
 * The collections' conformance suite (`suite.ts`) on the embedded backend:
 * the semantics on the backend itself, and a pool of 3 local nodes.
 */
import assert from "node:assert/strict";
import * as sky from "../../mod.ts";
import { embedded } from "../../src/collections/embedded.ts";
import { tempRoot } from "../helpers.ts";
import { poolSuite, semanticsSuite } from "./suite.ts";
import { increment } from "./computes.ts";

const root = await tempRoot();
const backend = { name: "embedded", option: () => embedded() };

semanticsSuite(backend);
poolSuite(backend, {
  name: "sky.Local",
  provider: () => sky.Local({ root }),
});

Deno.test("examples/collections.ts: 3 nodes drain the client's queue, the barrier separates the phases", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-worker-options", "examples/collections.ts"],
    cwd: new URL("../../", import.meta.url),
    env: { XDG_CACHE_HOME: root },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /sum of squares: 73810/);
  const squared = [...text.matchAll(/node \d squared (\d+)/g)].map((m) =>
    Number(m[1])
  );
  assert.equal(squared.reduce((a, b) => a + b, 0), 60);
});

Deno.test("with no pool open, fn.local() and sky.counter() use the process's own collections", async () => {
  assert.equal(await increment.local("local-hits", 25, 4), 0);
  assert.equal(await sky.counter("local-hits").value(), 25);
});

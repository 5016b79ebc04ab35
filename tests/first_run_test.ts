// The first run of a new user: the seed's hello works as written, a denied
// permission says which option to add, and the log lines read well.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  connects,
  hello,
  helloDenied,
  readsHome,
} from "./fixtures/first_run.ts";
import { tempRoot } from "./helpers.ts";

async function start(events: sky.PoolEvent[] = []) {
  return await sky.ComputePool.start({
    provider: sky.Local({ root: await tempRoot() }),
    console: "silent",
    onEvent: (e) => events.push(e),
  });
}

Deno.test("the seed's hello reads the host name with no permission set", async () => {
  await using pool = await start();
  assert.equal(await pool.run(hello()), `Hello from ${Deno.hostname()}!`);
});

Deno.test("a denied permission names the compute and the exact option to add, not --allow-*", async () => {
  await using pool = await start();
  const denied = (name: string, option: string) => (error: unknown) => {
    const e = error as sky.RemoteError;
    assert.equal(e.name, "RemoteError");
    assert.equal(e.remoteName, "NotCapable");
    assert.ok(e.message.startsWith("NotCapable: "), e.message);
    assert.ok(
      e.message.includes(`compute '${name}' needs`),
      `names the compute: ${e.message}`,
    );
    assert.ok(
      e.message.includes(`sky.compute(fn, { permissions: ${option} })`),
      `shows ${option}: ${e.message}`,
    );
    assert.doesNotMatch(e.message, /--allow-|run again/);
    assert.doesNotMatch(e.remoteStack ?? "", /--allow-|run again/);
    return true;
  };
  await assert.rejects(
    () => pool.run(helloDenied()),
    denied("helloDenied", '{ sys: ["hostname"] }'),
  );
  await assert.rejects(
    () => pool.run(readsHome()),
    denied("readsHome", '{ env: ["HOME"] }'),
  );
  // A list the compute already has is extended, not replaced.
  await assert.rejects(
    () => pool.run(connects(9)),
    denied("connects", '{ net: ["example.com", "127.0.0.1:9"] }'),
  );
});

Deno.test("the local provider's lines do not repeat its name as a region", async () => {
  const events: sky.PoolEvent[] = [];
  await using _pool = await start(events);
  const prepared = events.find((e) => e.type === "ClusterProvisioned")!;
  assert.equal(
    sky.formatEvent(prepared),
    "[ClusterProvisioned] Cluster prepared on local for 1 node(s)",
  );
});

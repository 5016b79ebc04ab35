// ComputePool.start({ signal }): aborting the start stops it, releases what
// was launched, and rejects with the signal's reason.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { square } from "./fixtures/computes.ts";
import { eventually, tempRoot } from "./helpers.ts";

/** Pids of the processes whose command line names `dir` (the workers of its nodes). */
async function processesUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(dir)) pids.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Nothing is left of a pool whose nodes were under `root`: no machine held, no worker. */
async function nothingLeft(root: string, held: Set<string>): Promise<void> {
  assert.deepEqual([...held], [], "every machine launched is released");
  await eventually(
    async () => (await processesUnder(root)).length === 0,
    10_000,
    "no worker left",
  );
}

/** Starts a 2-node pool on `provider` with `signal`. */
function startTwo(
  provider: sky.Provider<any>,
  signal: AbortSignal,
  onEvent?: (e: sky.PoolEvent) => void,
): Promise<sky.ComputePool> {
  return sky.ComputePool.start({
    provider,
    nodes: 2,
    console: "silent",
    signal,
    onEvent,
  });
}

/** A local provider that records which machines are held, and calls `onCall` at each call. */
function recording(root: string, onCall: (call: string) => void = () => {}) {
  const local = sky.Local({ root });
  const held = new Set<string>();
  const calls: string[] = [];
  const provider: sky.Provider<any> = {
    ...local,
    prepare(spec, offer) {
      calls.push("prepare");
      onCall("prepare");
      return local.prepare(spec, offer);
    },
    async provision(cluster, count) {
      calls.push("provision");
      const instances = await local.provision(cluster, count);
      for (const instance of instances) held.add(instance.id);
      onCall("provision");
      return instances;
    },
    async terminate(cluster, ids) {
      calls.push("terminate");
      for (const id of ids) held.delete(id);
      await local.terminate(cluster, ids);
    },
    teardown(cluster) {
      calls.push("teardown");
      return local.teardown(cluster);
    },
  };
  return { provider, held, calls };
}

Deno.test("aborting the start once machines are launched releases them and rejects with the signal's reason", async () => {
  const root = await tempRoot();
  const controller = new AbortController();
  const reason = new Error("the user gave up");
  const { provider, held, calls } = recording(root, (call) => {
    if (call === "provision") controller.abort(reason);
  });
  await assert.rejects(
    startTwo(provider, controller.signal),
    (error) => error === reason,
  );
  assert.ok(calls.includes("provision"), "machines were launched");
  assert.equal(calls.at(-1), "teardown");
  await nothingLeft(root, held);
});

Deno.test("aborting the start while a worker starts stops it and leaves no process", async () => {
  const root = await tempRoot();
  const controller = new AbortController();
  const { provider, held } = recording(root);
  const events: string[] = [];
  await assert.rejects(
    startTwo(provider, controller.signal, (e) => {
      events.push(e.type);
      if (e.type === "NodeReady") controller.abort();
    }),
    (error) => (error as Error).name === "AbortError",
  );
  assert.ok(events.includes("NodeReady"), "a worker had started");
  assert.ok(!events.includes("ClusterReady"));
  assert.equal(events.at(-1), "ClusterDestroyed");
  await nothingLeft(root, held);
});

Deno.test("a signal aborted before the start rejects at once, before anything is asked of the provider", async () => {
  const root = await tempRoot();
  const { provider, calls } = recording(root);
  const reason = new Error("not needed after all");
  await assert.rejects(
    sky.ComputePool.start({
      provider,
      console: "silent",
      signal: AbortSignal.abort(reason),
    }),
    (error) => error === reason,
  );
  assert.deepEqual(calls, []);
});

Deno.test("a signal aborted after the start leaves the pool running", async () => {
  const root = await tempRoot();
  const controller = new AbortController();
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root }),
    console: "silent",
    signal: controller.signal,
  });
  controller.abort();
  assert.equal(await pool.run(square(3)), 9);
  // The workers are seen where the tests above see none.
  assert.ok((await processesUnder(root)).length > 0);
});

Deno.test("a signal that is not an AbortSignal is a ConfigError naming it", async () => {
  await assert.rejects(
    sky.ComputePool.start({
      provider: sky.Local(),
      console: "silent",
      signal: "stop" as unknown as AbortSignal,
    }),
    (error) =>
      error instanceof sky.ConfigError &&
      /'signal' must be an AbortSignal \(got "stop"\)/.test(error.message),
  );
});

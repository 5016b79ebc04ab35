/**
 * Elastic pools (`nodes: { desired, min, max }`, `pool.resize`), health
 * checks, and ranks and peers as nodes come and go, on the local provider.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  nodesSchema,
  planScaling,
  type ScalingState,
} from "../src/pool/elastic.ts";
import { info, nap, notMarkedSick, square } from "./fixtures/elastic.ts";
import { alive, eventually, ofType } from "./helpers.ts";

/** A fresh local root per test: node `n`'s directory is `${root}/node-${n}`. */
async function freshRoot(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "skyward-elastic-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(root, { recursive: true });
    } catch {
      // Already gone.
    }
  });
  return root;
}

async function start(
  options: Partial<sky.PoolOptions> & { root?: string } = {},
): Promise<{ pool: sky.ComputePool; events: sky.PoolEvent[]; root: string }> {
  const events: sky.PoolEvent[] = [];
  const root = options.root ?? await freshRoot();
  const { root: _, ...rest } = options;
  const pool = await sky.ComputePool.start({
    provider: sky.Local({ root }),
    console: "silent",
    onEvent: (e) => events.push(e),
    ...rest,
  });
  return { pool, events, root };
}

/**
 * The local provider, whose machines after the first `running` stay
 * "pending" until `release()`: nodes that join late.
 */
function slowToJoin(root: string, running: number) {
  const local = sky.Local({ root });
  const held = new Set<string>();
  let released = false;
  const provider: sky.Provider<sky.LocalCluster> = {
    ...local,
    async provision(cluster, count) {
      const instances = await local.provision(cluster, count);
      return instances.map((instance, i) => {
        if (i < running) return instance;
        held.add(instance.id);
        return { ...instance, status: "pending" as const };
      });
    },
    async getInstance(cluster, id) {
      const instance = await local.getInstance(cluster, id);
      return instance && held.has(id) && !released
        ? { ...instance, status: "pending" }
        : instance;
    },
  };
  return { provider, release: () => released = true };
}

Deno.test("a pool with { desired: 3, min: 1 } starts on one node and the others join", async () => {
  const root = await freshRoot();
  const { provider, release } = slowToJoin(root, 1);
  const events: sky.PoolEvent[] = [];
  await using pool = await sky.ComputePool.start({
    provider,
    nodes: { desired: 3, min: 1 },
    console: "silent",
    onEvent: (e) => events.push(e),
  });
  assert.equal(pool.size, 1);
  assert.deepEqual(ofType(events, "ClusterReady").map((e) => e.nodes), [1]);
  // Work runs on the first node while the others start.
  assert.deepEqual(await pool.run(sky.gather(nap(1), nap(1))), [0, 0]);
  release();
  await eventually(() => pool.size === 3, 20_000, "3 ready nodes");
  const infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => i.node), [0, 1, 2]);
  assert.deepEqual(infos.map((i) => i.totalNodes), [3, 3, 3]);
  assert.deepEqual(infos.map((i) => i.peers.length), [3, 3, 3]);
});

Deno.test("an elastic pool grows while tasks wait and retires idle nodes down to min", async () => {
  const { pool, events } = await start({
    nodes: { desired: 1, min: 1, max: 3, cooldown: 0, idleTimeout: 400 },
  });
  await using _ = pool;
  const ran = await pool.run(
    sky.gather(...Array.from({ length: 8 }, () => nap(800))),
  );
  const grown = ofType(events, "PoolResized").filter((e) =>
    e.reason === "queue"
  );
  assert.ok(grown.length >= 1, JSON.stringify(grown));
  assert.equal(grown[0].previous, 1);
  assert.equal(Math.max(...grown.map((e) => e.nodes)), 3);
  assert.ok(new Set(ran).size > 1, `every task ran on node ${ran[0]}`);
  assert.ok(ran.every((n) => n >= 0 && n < 3), JSON.stringify(ran));
  // Idle, it goes back to one node, retiring the highest ranks.
  await eventually(
    () => ofType(events, "NodeRetired").length === 2,
    20_000,
    "2 retired nodes",
  );
  assert.deepEqual(
    ofType(events, "NodeRetired").map((e) => `${e.node}:${e.reason}`).sort(),
    ["1:idle", "2:idle"],
  );
  assert.equal(pool.size, 1);
  const infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => [i.node, i.totalNodes]), [[0, 1]]);
  assert.deepEqual(infos[0].peers, ["127.0.0.1"]);
  // Retired nodes leave no worker behind.
  for (const pid of ofType(events, "NodeReady").map((e) => e.pid).slice(1)) {
    assert.equal(await alive(pid), false, `worker ${pid} is still alive`);
  }
});

Deno.test("a pool with min: 0 starts empty, wakes for a task and scales back to zero", async () => {
  const { pool, events } = await start({
    nodes: { min: 0, max: 2, idleTimeout: 300 },
  });
  await using _ = pool;
  assert.equal(pool.size, 0);
  assert.deepEqual(await pool.broadcast(info()), []);
  assert.equal(await pool.run(square(3)), 9);
  assert.equal(ofType(events, "NodeReady").length, 1);
  await eventually(
    () => ofType(events, "NodeRetired").length === 1,
    10_000,
    "the pool to scale to zero",
  );
  assert.equal(pool.size, 0);
  // It wakes again, with the lowest free rank.
  assert.equal((await pool.run(info())).node, 0);
  const woke = ofType(events, "PoolResized").filter((e) =>
    e.reason === "queue"
  );
  assert.deepEqual(woke.map((e) => [e.previous, e.nodes]), [[0, 1], [0, 1]]);
});

Deno.test("resize() grows and shrinks a pool while tasks run, and loses none", async () => {
  const { pool, events } = await start({ nodes: 1 });
  await using _ = pool;
  const running = pool.run(
    sky.gather(...Array.from({ length: 8 }, () => nap(600))),
  );
  await pool.resize(3);
  assert.equal(pool.size, 3);
  await pool.resize(1);
  assert.equal(pool.size, 1);
  const ran = await running;
  assert.equal(ran.length, 8);
  assert.deepEqual(ofType(events, "TaskFailed"), []);
  assert.deepEqual(
    ofType(events, "NodeRetired").map((e) => e.reason),
    ["resize", "resize"],
  );
  assert.deepEqual(
    ofType(events, "PoolResized").map((e) => [e.previous, e.nodes, e.reason]),
    [[1, 3, "resize"], [3, 1, "resize"]],
  );
  assert.deepEqual((await pool.broadcast(info())).map((i) => i.node), [0]);
  await assert.rejects(() => pool.resize(-1), {
    name: "RangeError",
    message: /'nodes' must be a non-negative integer, got -1/,
  });
});

Deno.test("a node failing its health check takes no task until it passes", async () => {
  const root = await freshRoot();
  // Node 1's machine is sick from the start.
  await Deno.mkdir(`${root}/node-1`, { recursive: true });
  await Deno.writeTextFile(`${root}/node-1/sick`, "");
  const { pool, events } = await start({
    root,
    nodes: { desired: 2, min: 1 },
    healthCheck: { fn: notMarkedSick, interval: 100, failures: 1_000 },
  });
  await using _ = pool;
  await eventually(
    () => ofType(events, "HealthCheckFailed").length >= 2,
    10_000,
    "failed health checks",
  );
  assert.equal(pool.size, 1);
  assert.ok(ofType(events, "HealthCheckFailed").every((e) => e.node === 1));
  const ran = await pool.run(sky.gather(nap(1), nap(1), nap(1), nap(1)));
  assert.deepEqual(ran, [0, 0, 0, 0]);
  assert.deepEqual((await pool.broadcast(info())).map((i) => i.node), [0]);
  assert.deepEqual(ofType(events, "NodeReady").map((e) => e.node), [0]);
  await Deno.remove(`${root}/node-1/sick`);
  await eventually(() => pool.size === 2, 10_000, "node 1 admitted");
  assert.deepEqual(ofType(events, "NodeReady").map((e) => e.node), [0, 1]);
  assert.deepEqual((await pool.broadcast(info())).map((i) => i.node), [0, 1]);
  // Health checks are not reported as tasks: 4 naps and 3 broadcast tasks.
  assert.equal(ofType(events, "TaskStarted").length, 7);
  assert.equal(ofType(events, "TaskCompleted").length, 7);
});

/** The live processes whose working directory is under `dir`. */
async function processesIn(dir: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cwd = await Deno.readLink(`/proc/${entry.name}/cwd`);
      const pid = Number(entry.name);
      if (cwd.startsWith(`${dir}/`) && await alive(pid)) found.push(pid);
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

/** The local provider, recording the machines it was asked to terminate. */
function recordingTerminations(root: string) {
  const local = sky.Local({ root });
  const terminated: string[] = [];
  const provider: sky.Provider<sky.LocalCluster> = {
    ...local,
    terminate(cluster, ids) {
      terminated.push(...ids);
      return local.terminate(cluster, ids);
    },
  };
  return { provider, terminated };
}

Deno.test("a node that never passes its first health check is given up and its machine released", async () => {
  const root = await freshRoot();
  await Deno.mkdir(`${root}/node-1`, { recursive: true });
  await Deno.writeTextFile(`${root}/node-1/sick`, "");
  const { provider, terminated } = recordingTerminations(root);
  const events: sky.PoolEvent[] = [];
  await using pool = await sky.ComputePool.start({
    provider,
    nodes: { desired: 2, min: 1 },
    healthCheck: { fn: notMarkedSick, interval: 100, failures: 3 },
    console: "silent",
    onEvent: (e) => events.push(e),
  });
  const sick = ofType(events, "InstanceLaunched").find((e) => e.node === 1)!;
  await eventually(
    () => terminated.includes(sick.instance),
    10_000,
    "node 1's machine to be released",
  );
  assert.deepEqual(
    ofType(events, "HealthCheckFailed").map((e) => [e.node, e.failures]),
    [[1, 1], [1, 2], [1, 3]],
  );
  assert.deepEqual(ofType(events, "NodeReady").map((e) => e.node), [0]);
  assert.equal(pool.size, 1);
  await eventually(
    async () => (await processesIn(`${root}/node-1`)).length === 0,
    5_000,
    "no process left in node 1's directory",
  );
  assert.ok((await processesIn(`${root}/node-0`)).length > 0);
  assert.deepEqual((await pool.broadcast(info())).map((i) => i.peers), [[
    "127.0.0.1",
  ]]);
});

Deno.test("a pool whose only node fails its first health checks does not start, and leaves nothing", async () => {
  const root = await freshRoot();
  await Deno.mkdir(`${root}/node-0`, { recursive: true });
  await Deno.writeTextFile(`${root}/node-0/sick`, "");
  const { provider, terminated } = recordingTerminations(root);
  const events: sky.PoolEvent[] = [];
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider,
        healthCheck: { fn: notMarkedSick, interval: 50, failures: 2 },
        console: "silent",
        onEvent: (e) => events.push(e),
      }),
    (error: Error) => {
      assert.equal(error.name, "ProvisioningError");
      assert.match(error.message, /health check failed 2 time\(s\) in a row/);
      return true;
    },
  );
  const [launched] = ofType(events, "InstanceLaunched");
  assert.ok(terminated.includes(launched.instance), terminated.join());
  assert.equal(ofType(events, "ClusterDestroyed").length, 1);
  const started = events.find((e) =>
    e.type === "BootstrapPhase" && e.phase === "worker" &&
    e.status === "completed"
  );
  assert.ok(started, "the worker started before its checks");
});

Deno.test("a node failing its health checks in a row is replaced on a new machine", async () => {
  const { pool, events, root } = await start({
    nodes: 2,
    healthCheck: { fn: notMarkedSick, interval: 100, failures: 2 },
  });
  await using _ = pool;
  const before = ofType(events, "NodeReady").find((e) => e.node === 1)!;
  await Deno.writeTextFile(`${root}/node-1/sick`, "");
  await eventually(
    () => ofType(events, "InstanceReplaced").length === 1,
    20_000,
    "node 1 to be replaced",
  );
  const lost = ofType(events, "NodeLost");
  assert.equal(lost.length, 1);
  assert.equal(lost[0].node, 1);
  assert.match(lost[0].reason, /health check failed 2 time\(s\) in a row/);
  const [replaced] = ofType(events, "InstanceReplaced");
  assert.equal(replaced.node, 1);
  assert.equal(replaced.previous, before.instance);
  assert.notEqual(replaced.instance, before.instance);
  assert.equal(ofType(events, "InstancePreempted").length, 0);
  await eventually(() => pool.size === 2, 10_000, "2 ready nodes");
  assert.deepEqual((await pool.broadcast(info())).map((i) => i.node), [0, 1]);
  assert.equal(await alive(before.pid), false, "the sick node's worker lives");
});

Deno.test("a replaced node takes the lowest free rank and every node sees the new peers", async () => {
  const { pool, events, root } = await start({
    nodes: 3,
    worker: { concurrency: 2 },
    healthCheck: { fn: notMarkedSick, interval: 100, failures: 2 },
  });
  await using _ = pool;
  // Nodes 0 and 2 are busy, so resize(2) retires idle node 1: rank 1 is free.
  const busy = [
    pool.run(nap(1500), { node: 0 }),
    pool.run(nap(1500), { node: 2 }),
  ];
  await pool.resize(2);
  assert.deepEqual(ofType(events, "NodeRetired").map((e) => e.node), [1]);
  let infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => i.node), [0, 2]);
  assert.deepEqual(infos.map((i) => i.peers), [
    ["127.0.0.1", "", "127.0.0.1"],
    ["127.0.0.1", "", "127.0.0.1"],
  ]);
  // Node 2's machine falls sick: its replacement takes rank 1.
  await Deno.writeTextFile(`${root}/node-2/sick`, "");
  await eventually(
    () => ofType(events, "InstanceReplaced").length === 1,
    20_000,
    "node 2 to be replaced",
  );
  assert.equal(ofType(events, "InstanceReplaced")[0].node, 1);
  // The task that ran on node 2 ran again on its replacement.
  assert.deepEqual(await Promise.all(busy), [0, 1]);
  infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => [i.node, i.totalNodes]), [[0, 2], [1, 2]]);
  assert.deepEqual(infos[0].peers, ["127.0.0.1", "127.0.0.1"]);
  await assert.rejects(() => pool.run(square(2), { node: 2 }), {
    name: "RangeError",
    message: /Cannot run on node 2: the pool's nodes are 0 to 1/,
  });
});

Deno.test("bad elastic and health check options are a ConfigError naming them", async () => {
  const provider = sky.Local();
  const cases: [Partial<sky.PoolOptions>, RegExp][] = [
    [{ nodes: { min: 3, max: 2 } }, /'nodes\.min' must not exceed max \(2\)/],
    [
      { nodes: { desired: 5, max: 4 } },
      /'nodes\.desired' must be between min \(5\) and max \(4\)|'nodes\.min' must not exceed max/,
    ],
    [
      { nodes: { desired: 1, min: 2, max: 4 } },
      /'nodes\.desired' must be between min \(2\) and max \(4\)/,
    ],
    [{ nodes: { min: -1, max: 2 } }, /'nodes\.min'.*>=0.*\(got -1\)/],
    [{ nodes: { max: 0 } }, /'nodes\.max'.*\(got 0\)/],
    [{ nodes: { min: 1, max: 2, cooldown: -5 } }, /'nodes\.cooldown'/],
    [{ nodes: 0 }, /'nodes'/],
    [
      { healthCheck: { fn: () => true } as never },
      /'healthCheck\.fn' must be a compute taking no argument/,
    ],
    [
      { healthCheck: { fn: notMarkedSick, failures: 0 } },
      /'healthCheck\.failures'/,
    ],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(
      () => sky.ComputePool.start({ provider, console: "silent", ...options }),
      (error: Error) => {
        assert.equal(error.name, "ConfigError", error.message);
        assert.match(error.message, message);
        return true;
      },
      JSON.stringify(options),
    );
  }
});

const base: ScalingState = {
  now: 100_000,
  live: 1,
  starting: 0,
  waiting: 0,
  concurrency: 1,
  lastAdded: -Infinity,
  ranks: [0],
  idle: [],
};

Deno.test("the scaling policy adds a node per waiting slot, up to max, once per cooldown", () => {
  const nodes = nodesSchema.parse({ min: 1, max: 4, cooldown: 1_000 });
  assert.deepEqual(planScaling(nodes, { ...base, waiting: 2 }), {
    add: 2,
    retire: [],
  });
  assert.equal(planScaling(nodes, { ...base, waiting: 50 }).add, 3);
  // Nodes still starting will take some of the waiting tasks.
  assert.equal(
    planScaling(nodes, { ...base, live: 3, starting: 2, waiting: 3 }).add,
    1,
  );
  assert.equal(
    planScaling(nodes, { ...base, waiting: 5, lastAdded: 99_500 }).add,
    0,
  );
  const slow = nodesSchema.parse({ min: 1, max: 4, pressure: 4 });
  assert.equal(
    planScaling(slow, { ...base, waiting: 7, concurrency: 2 }).add,
    0,
  );
  assert.equal(
    planScaling(slow, { ...base, waiting: 8, concurrency: 2 }).add,
    1,
  );
  // An empty pool wakes for a single task; a pool below min gets back to it.
  const zero = nodesSchema.parse({ min: 0, max: 2, pressure: 10 });
  assert.equal(
    planScaling(zero, { ...base, live: 0, waiting: 1, lastAdded: 1e9 }).add,
    1,
  );
  assert.equal(planScaling(nodes, { ...base, live: 0 }).add, 1);
});

Deno.test("the scaling policy retires nodes idle past the timeout, highest rank first, down to min", () => {
  const nodes = nodesSchema.parse({ min: 1, max: 4, idleTimeout: 1_000 });
  const idle = [
    { rank: 0, since: 0 },
    { rank: 1, since: 0 },
    { rank: 2, since: 0 },
    { rank: 3, since: 99_500 },
  ];
  const ranks = [0, 1, 2, 3];
  // Node 0, one of the `min` lowest ranks, stays; node 3 is not idle long enough.
  assert.deepEqual(planScaling(nodes, { ...base, live: 4, ranks, idle }), {
    add: 0,
    retire: [2, 1],
  });
  const two = nodesSchema.parse({ min: 2, max: 4, idleTimeout: 1_000 });
  assert.deepEqual(
    planScaling(two, { ...base, live: 4, ranks, idle }).retire,
    [2],
  );
  // Nothing is retired while tasks wait.
  assert.deepEqual(
    planScaling(nodes, {
      ...base,
      live: 4,
      ranks,
      waiting: 1,
      idle,
      lastAdded: 1e9,
    }).retire,
    [],
  );
});

import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  add,
  echo,
  env,
  exit,
  failing,
  info,
  named,
  returnsFunction,
  shout,
  sleep,
  slowTimeout,
  square,
  whereAmI,
} from "./fixtures/computes.ts";
import { alive, localPools, tempRoot } from "./helpers.ts";

const root = await tempRoot();

const start = localPools(root);

Deno.test("run() returns a task's result, typed as the function's return", async () => {
  await using pool = await start();
  const n: number = await pool.run(square(4));
  assert.equal(n, 16);
  assert.equal(await pool.run(add(2, 3)), 5);
});

Deno.test("gather() resolves to results in order and all() to a typed tuple", async () => {
  await using pool = await start({ nodes: 2 });
  assert.deepEqual(
    await pool.run(sky.gather(square(1), square(2), square(3))),
    [1, 4, 9],
  );
  const [a, where] = await pool.run(sky.all(square(3), info()));
  const three: number = a;
  assert.equal(three, 9);
  assert.equal(where.totalNodes, 2);
});

Deno.test("broadcast() on 2 nodes returns nodes [0, 1] with one jobId", async () => {
  await using pool = await start({ nodes: 2 });
  const infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => i.node), [0, 1]);
  assert.equal(new Set(infos.map((i) => i.jobId)).size, 1);
  assert.equal(infos[0].jobId, pool.id);
  assert.deepEqual(infos.map((i) => i.isHead), [true, false]);
  assert.equal(infos[1].headAddr, infos[0].peers[0]);
});

Deno.test("tasks are spread round robin over the nodes", async () => {
  await using pool = await start({ nodes: 2, worker: { concurrency: 3 } });
  const nodes = await pool.run(
    sky.gather(...Array.from({ length: 6 }, () => info())),
  );
  assert.deepEqual(nodes.map((i) => i.node).sort(), [0, 0, 0, 1, 1, 1]);
});

Deno.test("submit() returns a handle to await, and cancel() rejects it", async () => {
  await using pool = await start();
  const handle = pool.submit(square(5));
  assert.equal(await handle, 25);
  const slow = pool.submit(sleep(10_000));
  slow.cancel();
  await assert.rejects(async () => await slow, { name: "TaskCancelledError" });
  // The node still serves after a cancelled task.
  assert.equal(await pool.run(square(2)), 4);
});

Deno.test("stream() yields in order, or as tasks complete when unordered", async () => {
  await using pool = await start({ nodes: 2 });
  const ordered: number[] = [];
  for await (const r of pool.stream(sky.gather(sleep(150), sleep(10)))) {
    ordered.push(r);
  }
  assert.deepEqual(ordered, [150, 10]);
  const unordered: number[] = [];
  for await (
    const r of pool.stream(sky.gather(sleep(150), sleep(10)), {
      ordered: false,
    })
  ) {
    unordered.push(r);
  }
  assert.deepEqual(unordered, [10, 150]);
});

Deno.test("map() applies a compute to an array and to an async iterable", async () => {
  await using pool = await start({ nodes: 2 });
  assert.deepEqual(await pool.map(square, [1, 2, 3, 4]), [1, 4, 9, 16]);
  async function* numbers() {
    for (let i = 0; i < 20; i++) yield i;
  }
  const out: number[] = [];
  for await (const r of pool.map(square, numbers())) out.push(r);
  assert.deepEqual(out, Array.from({ length: 20 }, (_, i) => i * i));
});

Deno.test("a task throwing a custom error arrives as RemoteError with its name, message and cause", async () => {
  await using pool = await start();
  const error = await pool.run(failing(3)).then(() => undefined, (e) => e);
  assert.ok(error instanceof sky.RemoteError);
  assert.equal(error.name, "RemoteError");
  assert.equal(error.remoteName, "InventoryError");
  assert.equal(error.message, "InventoryError: only 3 left");
  // Its own properties come along.
  assert.equal((error as unknown as { left: number }).left, 3);
  assert.ok(error.cause instanceof RangeError);
  assert.equal((error.cause as Error).message, "stock");
  // The remote stack points at the client's own source, not the node's copy.
  const fixture = new URL("./fixtures/computes.ts", import.meta.url).href;
  assert.ok(error.remoteStack?.includes(fixture), error.remoteStack);
});

Deno.test("the worker imports the user's module from the shipped copy, not the client's tree", async () => {
  await using pool = await start();
  const url = await pool.run(whereAmI());
  assert.ok(url.startsWith(new URL(`file://${root}/node-0/code/`).href), url);
  assert.ok(url.endsWith("/tests/fixtures/computes.ts"), url);
});

Deno.test("code is shipped once per node: a second pool skips the copy", async () => {
  const phases: sky.PoolEvent[] = [];
  await (await start({ onEvent: (e) => phases.push(e) })).close();
  const second: sky.PoolEvent[] = [];
  await using pool = await start({ onEvent: (e) => second.push(e) });
  assert.equal(await pool.run(square(3)), 9);
  const code = second.filter((e) =>
    e.type === "BootstrapPhase" && e.phase === "code"
  );
  assert.deepEqual(code.map((e) => e.type === "BootstrapPhase" && e.status), [
    "started",
    "skipped",
  ]);
});

Deno.test("an unserialisable argument is a SerializationError naming its path, before sending", async () => {
  const events: sky.PoolEvent[] = [];
  await using pool = await start({ onEvent: (e) => events.push(e) });
  await assert.rejects(
    () => pool.run(echo({ onDone: () => {} })),
    (error: Error) => {
      assert.ok(error instanceof sky.SerializationError);
      assert.match(
        error.message,
        /Cannot send args\[0\]\.onDone: it is a function/,
      );
      return true;
    },
  );
  assert.equal(events.filter((e) => e.type === "TaskStarted").length, 0);
});

Deno.test("an unserialisable result is a SerializationError naming its path", async () => {
  await using pool = await start();
  await assert.rejects(() => pool.run(returnsFunction()), (error: Error) => {
    assert.ok(error instanceof sky.SerializationError, String(error));
    assert.match(error.message, /result\.callback/);
    return true;
  });
});

Deno.test("a task past its timeout fails with TaskTimeoutError and the node keeps serving", async () => {
  await using pool = await start();
  await assert.rejects(() => pool.run(slowTimeout()), (error: Error) => {
    assert.ok(error instanceof sky.TaskTimeoutError);
    assert.equal(error.timeoutMs, 200);
    return true;
  });
  await assert.rejects(
    () => pool.run(sleep(5_000).withTimeout(100)),
    sky.TaskTimeoutError,
  );
  assert.equal(await pool.run(square(7)), 49);
});

Deno.test("console output of a task comes back as Log events with its node", async () => {
  const logs: sky.PoolEvent[] = [];
  await using pool = await start({
    onEvent: (e) => e.type === "Log" && logs.push(e),
  });
  assert.equal(await pool.run(shout("hi there")), 8);
  const lines = logs.map((e) =>
    e.type === "Log" && `${e.node}:${e.stream}:${e.line}`
  );
  assert.ok(lines.includes("0:stdout:hi there"), JSON.stringify(lines));
  assert.ok(lines.includes("0:stderr:err:hi there"), JSON.stringify(lines));
});

Deno.test("events arrive in lifecycle order through onEvent and pool.events", async () => {
  const seen: string[] = [];
  const pool = await start({ nodes: 2, onEvent: (e) => seen.push(e.type) });
  const iterated: string[] = [];
  const reading = (async () => {
    for await (const e of pool.events) iterated.push(e.type);
  })();
  await pool.run(named(1));
  await pool.close();
  await reading;
  assert.equal(seen[0], "ClusterProvisioned");
  assert.ok(seen.indexOf("ClusterReady") > seen.lastIndexOf("NodeReady"));
  assert.equal(seen.filter((t) => t === "NodeReady").length, 2);
  assert.ok(seen.includes("TaskStarted") && seen.includes("TaskCompleted"));
  assert.equal(seen.at(-1), "ClusterDestroyed");
  assert.equal(iterated[0], "ClusterProvisioned");
  assert.equal(iterated.at(-1), "ClusterDestroyed");
});

Deno.test("a named compute uses its name in events", async () => {
  const names: string[] = [];
  await using pool = await start({
    onEvent: (e) => e.type === "TaskCompleted" && names.push(e.name),
  });
  await pool.run(named(1));
  await pool.run(square(1));
  assert.deepEqual(names, ["increment", "square"]);
});

Deno.test("image env is visible to tasks", async () => {
  await using pool = await start({
    image: sky.Image({ env: { MODE: "prod" } }),
  });
  assert.equal(await pool.run(env("MODE")), "prod");
});

Deno.test("closing a pool rejects tasks in flight with PoolClosedError and leaves no worker", async () => {
  const pool = await start({ nodes: 2 });
  const pids = pool.workerPids as number[];
  assert.equal(pids.length, 2);
  for (const pid of pids) assert.ok(await alive(pid));
  const running = pool.run(
    sky.gather(sleep(10_000), sleep(10_000), sleep(10_000)),
  )
    .catch((e) => e);
  const queued = pool.run(square(2)).catch((e) => e);
  await new Promise((r) => setTimeout(r, 100));
  await pool.close();
  assert.ok(await running instanceof sky.PoolClosedError);
  assert.ok(await queued instanceof sky.PoolClosedError);
  await assert.rejects(() => pool.run(square(1)), sky.PoolClosedError);
  for (const pid of pids) {
    assert.equal(await alive(pid), false, `worker ${pid} is still alive`);
  }
});

Deno.test("bad options are a ConfigError naming the option and the value", async () => {
  await assert.rejects(
    () => sky.ComputePool.start({ provider: sky.Local({ root }), nodes: -1 }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError);
      assert.match(error.message, /'nodes'/);
      assert.match(error.message, /-1/);
      return true;
    },
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => sky.ComputePool.start({ provider: {} as any }),
    /'provider' must be a provider/,
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () =>
      sky.ComputePool.start({ provider: sky.Local({ root }), nodez: 2 } as any),
    /unknown option 'nodez' \(did you mean 'nodes'\?\)/,
  );
});

Deno.test("running something that is not a task is a clear TypeError", async () => {
  await using pool = await start();
  // deno-lint-ignore no-explicit-any
  await assert.rejects(() => pool.run(42 as any), /expected a task/);
});

Deno.test("a node busy with a long task is not handed queued work while another node is free", async () => {
  await using pool = await start({ nodes: 2 });
  const done: string[] = [];
  const long = pool.run(sleep(800)).then(() => done.push("long"));
  const shorts = pool.map(sleep, [30, 30, 30, 30, 30]).then(() =>
    done.push("shorts")
  );
  await Promise.all([long, shorts]);
  assert.deepEqual(done, ["shorts", "long"]);
});

Deno.test("run() with a node index runs there, and an absent node fails at once", async () => {
  await using pool = await start({ nodes: 2 });
  assert.equal((await pool.run(info(), { node: 1 })).node, 1);
  const both = await pool.run(sky.gather(info(), info(), info()), { node: 0 });
  assert.deepEqual(both.map((i) => i.node), [0, 0, 0]);
  await assert.rejects(
    () => pool.run(square(1), { node: 5 }),
    /Cannot run on node 5: the pool's nodes are 0 to 1/,
  );
  assert.deepEqual(await pool.map(square, [2, 3], { node: 1 }), [4, 9]);
  await assert.rejects(
    async () => await pool.map(square, [1, 2], { node: 5 }),
    /Cannot run on node 5: the pool's nodes are 0 to 1/,
  );
});

Deno.test("a task that kills its worker every time fails after its retries, and the pool keeps serving", async () => {
  await using pool = await start({ retryOnInterruption: 1 });
  await assert.rejects(() => pool.run(exit(9)), (error: Error) => {
    assert.ok(error instanceof sky.NodeLostError, String(error));
    assert.match(error.message, /exited with signal SIGKILL/);
    return true;
  });
  assert.equal(await pool.run(square(3)), 9);
});

Deno.test("map() stops and cancels its tasks when its signal is aborted", async () => {
  await using pool = await start({ nodes: 2 });
  const controller = new AbortController();
  const seen: number[] = [];
  const consuming = (async () => {
    for await (
      const r of pool.map(sleep, [10, 5_000, 5_000, 5_000], {
        signal: controller.signal,
      })
    ) {
      seen.push(r);
      controller.abort();
    }
  })();
  await assert.rejects(() => consuming, sky.TaskCancelledError);
  assert.deepEqual(seen, [10]);
  assert.equal(await pool.run(square(2)), 4);
});

Deno.test("a signal aborted before run() or broadcast() cancels their tasks: none is sent", async () => {
  const events: sky.PoolEvent[] = [];
  await using pool = await start({
    nodes: 2,
    onEvent: (e) => events.push(e),
  });
  const signal = AbortSignal.abort();
  await assert.rejects(
    () => pool.run(sky.gather(square(1), square(2)), { signal }),
    sky.TaskCancelledError,
  );
  await assert.rejects(
    () => pool.broadcast(info(), { signal }),
    sky.TaskCancelledError,
  );
  assert.equal(events.filter((e) => e.type === "TaskStarted").length, 0);
  assert.equal(await pool.run(square(3)), 9);
});

Deno.test("a task lost with its node past its retries fails once, with one TaskFailed event", async () => {
  const events: sky.PoolEvent[] = [];
  await using pool = await start({
    retryOnInterruption: 1,
    onEvent: (e) => events.push(e),
  });
  await assert.rejects(() => pool.run(exit(9)), sky.NodeLostError);
  const task = events.find((e) => e.type === "TaskStarted")!;
  const ends = events.filter((e) =>
    (e.type === "TaskFailed" || e.type === "TaskCompleted") &&
    e.task === (task as sky.TaskStarted).task
  );
  assert.equal(ends.length, 1, JSON.stringify(ends));
  assert.equal((ends[0] as sky.TaskFailed).error, "NodeLostError");
  // It was sent twice: once, and once again after its node was lost.
  assert.equal(
    events.filter((e) =>
      e.type === "TaskStarted" && e.task === (task as sky.TaskStarted).task
    ).length,
    2,
  );
});

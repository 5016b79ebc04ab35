// The sandboxes, through a real local pool: each task holds exactly its
// compute's permissions; every way out is refused and reported, and the node
// keeps serving.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  allocate,
  allocateAsync,
  allocateWithin,
  askForRead,
  connect,
  countFresh,
  countShared,
  countWith,
  dumpEnv,
  envWithOther,
  exitSandbox,
  exitWhileReturning,
  fetchUrl,
  hostname,
  importUrl,
  largeLimit,
  loadFfi,
  meddleWithStdio,
  pid,
  readEnv,
  readFile,
  readGranted,
  readHomeKey,
  rejectLater,
  scratch,
  smallestLimit,
  spawn,
  spin,
  wasmAdd,
  wasmEcho,
  wasmFree,
  wasmGlobals,
  wasmGrow,
  wasmHoard,
  wasmImport,
  wasmLog,
  wasmLoop,
  wasmSpin,
  wasmSquare,
  wasmThrows,
  where,
  writeFile,
} from "./fixtures/sandboxed.ts";
import { echo, square } from "./fixtures/computes.ts";
import { heavyLoad } from "./fixtures/heavy_module.ts";
import { localPools, tempRoot } from "./helpers.ts";
import { mergePermissions } from "../src/sandbox.ts";

const root = await tempRoot();
const SECRET = "SKYWARD_TEST_SECRET";
// The worker process inherits this from the client: a node secret.
Deno.env.set(SECRET, "hunter2");

/** A fake node HOME with an SSH key, and the Deno cache the worker needs. */
const home = await Deno.makeTempDir({ dir: root, prefix: "home-" });
await Deno.mkdir(`${home}/.ssh`);
await Deno.writeTextFile(`${home}/.ssh/id_ed25519`, "-----FAKE KEY-----\n");
const denoDir = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`}/deno`;

const start = localPools(root);

/** Fails unless the task was refused for lack of a permission (or by its sandbox). */
async function refused(
  task: Promise<unknown>,
  remoteName: string | RegExp = "NotCapable",
  message?: RegExp,
): Promise<sky.RemoteError> {
  const error = await task.then(
    (value) => assert.fail(`expected a refusal, got ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(error instanceof sky.RemoteError, String(error));
  if (typeof remoteName === "string") {
    assert.equal(error.remoteName, remoteName, error.message);
  } else assert.match(error.remoteName, remoteName, error.message);
  if (message) assert.match(error.message, message);
  return error;
}

/** CPU time (user + system) of a process so far, in clock ticks. */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

Deno.test("every way out of a task's sandbox is refused as NotCapable, and the node keeps serving", async (t) => {
  const outsideDir = await Deno.makeTempDir({ dir: root, prefix: "outside-" });
  await Deno.writeTextFile(`${outsideDir}/data.txt`, "private");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    for await (const connection of listener) connection.close();
  })();
  await using pool = await start({
    image: sky.Image({ env: { HOME: home, DENO_DIR: denoDir } }),
  });
  const workerPid = pool.workerPids[0]!;
  const steps: [string, () => Promise<unknown>][] = [
    [
      "reading the node's SSH key",
      () => refused(pool.run(readHomeKey()), "NotCapable", /id_ed25519/),
    ],
    [
      "reading the worker's environment secrets",
      async () => {
        await refused(pool.run(readEnv(SECRET)), "NotCapable", /env access/);
        await refused(pool.run(dumpEnv()));
        await refused(pool.run(readFile("/proc/self/environ")));
      },
    ],
    [
      "reading a file outside the grant",
      async () => {
        await refused(pool.run(readFile(`${outsideDir}/data.txt`)));
        await refused(pool.run(readGranted(`${outsideDir}/data.txt`)));
      },
    ],
    [
      "writing outside the grant",
      async () => {
        await refused(pool.run(writeFile(`${outsideDir}/x.txt`, "x")));
        await refused(pool.run(scratch("../../escape.txt", "x")));
        assert.equal(await pool.run(scratch("inside.txt", "ok")), "ok");
      },
    ],
    [
      "opening a socket or fetching",
      async () => {
        await refused(pool.run(connect(port)), "NotCapable", /net access/);
        await refused(pool.run(fetchUrl(`http://127.0.0.1:${port}/`)));
      },
    ],
    [
      "spawning a process",
      () => refused(pool.run(spawn()), "NotCapable", /run access/),
    ],
    [
      "loading FFI",
      () => refused(pool.run(loadFfi()), "NotCapable", /ffi access/),
    ],
    [
      "Deno.permissions.request",
      () =>
        refused(
          pool.run(askForRead(`${outsideDir}/data.txt`)),
          "NotCapable",
          /read access/,
        ),
    ],
    [
      "importing a data: URL, a remote URL or a local file",
      async () => {
        await refused(
          pool.run(importUrl(
            `data:text/javascript,export default Deno.readTextFileSync(${
              JSON.stringify(`${outsideDir}/data.txt`)
            })`,
          )),
        );
        await refused(
          pool.run(importUrl("https://deno.land/x/skyward/mod.ts")),
          "NotCapable",
          /import access/,
        );
        await Deno.writeTextFile(
          `${outsideDir}/module.js`,
          "export default 'escaped';",
        );
        await refused(
          pool.run(importUrl(`file://${outsideDir}/module.js`)),
          "NotCapable",
          /read access/,
        );
      },
    ],
    [
      "reaching the protocol through stdin and stdout",
      async () => {
        assert.equal(await pool.run(meddleWithStdio()), null);
        assert.equal(await pool.run(square(12)), 144);
      },
    ],
  ];
  for (const [name, attempt] of steps) {
    await t.step(name, async () => {
      await attempt();
      assert.equal(await pool.run(square(3)), 9);
    });
  }
  assert.equal(pool.workerPids[0], workerPid, "the worker was not restarted");
  listener.close();
  await accepting.catch(() => {});
});

Deno.test("a compute's grants work: scratch directory, named env variable, hostname, instanceInfo and logs", async () => {
  await Deno.mkdir("/tmp/skyward-sandbox-granted", { recursive: true });
  await Deno.writeTextFile("/tmp/skyward-sandbox-granted/a.txt", "granted");
  const logs: sky.PoolEvent[] = [];
  await using pool = await start({
    nodes: 2,
    image: sky.Image({ env: { MODE: "prod", OTHER: "other" } }),
    onEvent: (e) => e.type === "Log" && logs.push(e),
  });
  assert.equal(
    await pool.run(readGranted("/tmp/skyward-sandbox-granted/a.txt")),
    "granted",
  );
  await Deno.remove("/tmp/skyward-sandbox-granted", { recursive: true });
  assert.equal(await pool.run(hostname()), Deno.hostname());
  // Image env is the image's default env grant, by name.
  assert.equal(await pool.run(readEnv("MODE")), "prod");
  await refused(pool.run(readEnv(SECRET)));
  // A compute's own env grant replaces the image's.
  assert.equal(await pool.run(envWithOther("OTHER")), "other");
  await refused(pool.run(envWithOther("MODE")));
  const [a, b] = await pool.run(sky.all(where(), where()));
  assert.deepEqual([a.node, b.node].sort(), [0, 1]);
  assert.equal(a.totalNodes, 2);
  assert.equal(a.hostname, Deno.hostname());
  const line = logs.find((e) =>
    e.type === "Log" && e.line.startsWith("running on node")
  );
  assert.ok(
    line?.type === "Log" && typeof line.task === "number",
    JSON.stringify(logs),
  );
});

Deno.test("image permissions are the pool's default, which a compute narrows or extends name by name", () => {
  const image = sky.Image({
    env: { MODE: "prod" },
    permissions: { net: ["api.example.com"], sys: ["hostname"] },
  });
  assert.deepEqual(mergePermissions(image, undefined), {
    read: false,
    write: false,
    net: ["api.example.com"],
    env: ["MODE"],
    run: false,
    ffi: false,
    sys: ["hostname"],
    import: false,
  });
  const merged = mergePermissions(image, { net: false, read: ["/data"] });
  assert.equal(merged.net, false);
  assert.deepEqual(merged.read, ["/data"]);
  assert.deepEqual(merged.env, ["MODE"]);
  assert.equal(
    mergePermissions({ env: { MODE: "x" }, permissions: { env: false } }, {})
      .env,
    false,
  );
  assert.throws(
    () => sky.Image({ permissions: { disk: true } as sky.Permissions }),
    /unknown permission 'disk'/,
  );
});

Deno.test("a task past its timeout in a synchronous loop is stopped: its thread ends and the node keeps serving", async () => {
  await using pool = await start();
  const workerPid = pool.workerPids[0]!;
  assert.equal(await pool.run(square(2)), 4);
  const started = performance.now();
  await assert.rejects(() => pool.run(spin()), sky.TaskTimeoutError);
  assert.ok(performance.now() - started < 2_000);
  assert.equal(await pool.run(square(5)), 25);
  // The loop no longer burns a core.
  const before = await cpuTicks(workerPid);
  await new Promise((r) => setTimeout(r, 1_000));
  const used = await cpuTicks(workerPid) - before;
  assert.ok(used < 50, `the worker used ${used} ticks in 1 s after the stop`);
  assert.equal(pool.workerPids[0], workerPid);
});

Deno.test("a sandbox that dies fails its task with a SandboxError and is replaced: exit, unhandled rejection, out of memory", async () => {
  await using pool = await start();
  const workerPid = pool.workerPids[0]!;
  const sandboxPid = await pool.run(pid());
  assert.notEqual(sandboxPid, workerPid, "a sandbox is a process of its own");
  await refused(pool.run(exitSandbox(3)), "SandboxError", /exited with code 3/);
  assert.equal(await pool.run(square(4)), 16);
  await refused(
    pool.run(rejectLater()),
    "SandboxError",
    /nobody catches this/,
  );
  assert.equal(await pool.run(square(6)), 36);
  await refused(
    pool.run(allocate()),
    "SandboxError",
    /exceeded its memoryLimit/,
  );
  assert.equal(await pool.run(square(7)), 49);
  assert.equal(pool.workerPids[0], workerPid, "the worker was not restarted");
});

Deno.test("a sandbox that dies while its large result is on its way to the client fails its task with a SandboxError; the node keeps serving", async () => {
  const logs: string[] = [];
  await using pool = await start({
    onEvent: (e) => {
      if (e.type === "Log") logs.push(e.line);
    },
  });
  const workerPid = pool.workerPids[0]!;
  // The result goes on to the client as it comes: the part of it sent is
  // dropped, and its task fails, instead of waiting for the rest.
  await refused(
    pool.run(exitWhileReturning(256)),
    "SandboxError",
    /exited with code 4/,
  );
  assert.equal(await pool.run(square(8)), 64);
  const whole = await pool.run(
    echo(new Uint8Array(3 * 2 ** 20).fill(2)),
  ) as Uint8Array;
  assert.equal(whole.length, 3 * 2 ** 20);
  assert.ok(whole.every((b) => b === 2));
  assert.deepEqual(logs.filter((l) => /protocol|message \d+/i.test(l)), []);
  assert.equal(pool.workerPids[0], workerPid, "the worker was not restarted");
});

Deno.test("memoryLimit: tasks within it run; one that allocates past it fails naming the compute and the limit, and the node keeps serving", async () => {
  await using pool = await start();
  const workerPid = pool.workerPids[0]!;
  assert.equal(await pool.run(smallestLimit(1)), 2);
  assert.equal(await pool.run(largeLimit(2)), 3);
  // 24 MiB of numbers held at once, under a limit of 64 MiB.
  assert.equal(await pool.run(allocateWithin(24)), 24 * 2 ** 17);
  // (A time limit only so that a sandbox left hung fails the test.)
  for (
    const [task, name] of [
      [allocate().withTimeout(120_000), "allocate"],
      [allocateAsync().withTimeout(120_000), "allocateAsync"],
    ] as const
  ) {
    const error = await refused(
      pool.run(task),
      "SandboxError",
      new RegExp(`compute '${name}' exceeded its memoryLimit of 64 MiB`),
    );
    assert.doesNotMatch(error.message, /null/);
    // The node keeps serving, in the same worker process.
    assert.equal(await pool.run(allocateWithin(8)), 8 * 2 ** 17);
    assert.equal(await pool.run(square(7)), 49);
  }
  // A module that does not fit: said so, not "Error: null".
  await refused(
    pool.run(heavyLoad().withTimeout(120_000)),
    "SandboxError",
    /compute 'heavyLoad' exceeded its memoryLimit of 32 MiB while its sandbox loaded its module/,
  );
  assert.equal(await pool.run(square(8)), 64);
  assert.equal(pool.workerPids[0], workerPid, "the worker was not restarted");
});

Deno.test("isolation: shared sandboxes keep their globals between tasks, task isolation starts fresh", async () => {
  await using pool = await start();
  assert.deepEqual(
    [
      await pool.run(countShared()),
      await pool.run(countShared()),
      await pool.run(countShared()),
    ],
    [1, 2, 3],
  );
  assert.deepEqual(
    [await pool.run(countFresh()), await pool.run(countFresh())],
    [1, 1],
  );
});

Deno.test("WASM sandbox: a self-contained function runs in QuickJS with no host API, values round trip", async () => {
  const logs: string[] = [];
  await using pool = await start({
    onEvent: (e) => e.type === "Log" && logs.push(e.line),
  });
  assert.equal(await pool.run(wasmSquare(7)), 49);
  const value = {
    n: [1, -0, NaN, Infinity, undefined, null],
    big: 2n ** 70n,
    when: new Date(5),
    map: new Map<unknown, unknown>([[1, "a"], ["b", new Set([2])]]),
    bytes: new Uint8Array([1, 2, 3]),
    floats: new Float64Array([1.5]),
    $: "dollar",
  };
  assert.deepEqual(await pool.run(wasmEcho(value)), value);
  assert.equal(
    await pool.run(wasmGlobals()),
    "undefined,undefined,undefined,undefined,undefined",
  );
  assert.equal(await pool.run(wasmLog("from quickjs")), 12);
  assert.ok(logs.includes("from quickjs"), JSON.stringify(logs));
  const error = await refused(
    pool.run(wasmThrows(3)),
    "InventoryError",
    /only 3 left/,
  );
  assert.equal(error.message, "InventoryError: only 3 left");
});

Deno.test("WASM sandbox: free variables and imports are a clear error before the function runs", async () => {
  await using pool = await start();
  await refused(pool.run(wasmFree(2)), "TypeError", /uses 'outside'/);
  await refused(pool.run(wasmImport()), "TypeError", /imports modules/);
  assert.throws(
    () => sky.compute(function* () {}, { sandbox: "wasm" }),
    /it is a generator/,
  );
  assert.throws(
    () => sky.compute(() => 1, { sandbox: "wasm", permissions: { net: true } }),
    /has no host API/,
  );
  assert.equal(await pool.run(wasmSquare(3)), 9);
});

Deno.test("WASM sandbox: an infinite loop and a memory bomb are stopped within their limits", async () => {
  await using pool = await start();
  let started = performance.now();
  await assert.rejects(
    () => pool.run(wasmSpin()),
    (e: Error) =>
      e instanceof sky.TaskTimeoutError ||
      e instanceof sky.RemoteError && e.remoteName === "SandboxError",
  );
  assert.ok(performance.now() - started < 2_000);
  started = performance.now();
  await refused(pool.run(wasmHoard()), "SandboxError", /memory limit/);
  assert.ok(performance.now() - started < 10_000);
  assert.equal(await pool.run(wasmSquare(4)), 16);
});

Deno.test("sky.wasm runs an export of a raw module with its memory capped and its time limited", async () => {
  await using pool = await start();
  assert.equal(await pool.run(wasmAdd(2, 3)), 5);
  assert.equal(wasmAdd.local(2, 3), 5);
  // One page to start, four at most: growing by two works, by ten fails.
  assert.equal(await pool.run(wasmGrow(2)), 1);
  assert.equal(await pool.run(wasmGrow(10)), -1);
  const started = performance.now();
  await assert.rejects(
    () => pool.run(wasmLoop()),
    (e: Error) =>
      e instanceof sky.TaskTimeoutError ||
      e instanceof sky.RemoteError && e.remoteName === "SandboxError",
  );
  assert.ok(performance.now() - started < 2_000);
  assert.equal(await pool.run(wasmAdd(1, 1)), 2);
  assert.throws(
    () => sky.wasm(new Uint8Array([1, 2, 3]), "f"),
    /not a valid WebAssembly module/,
  );
});

Deno.test("a task cancelled while its large argument is on its way never runs, and its shared sandbox goes on with the next task", async () => {
  await using pool = await start();
  assert.equal(await pool.run(countWith(new Uint8Array(1))), 1);
  const handle = pool.submit(countWith(new Uint8Array(128 * 2 ** 20)));
  // Some 100 ms in, the argument is being encoded or sent (it takes a few
  // hundred ms to send): the call is dropped before it is sent, or half-way.
  await new Promise((resolve) => setTimeout(resolve, 100));
  handle.cancel();
  await assert.rejects(
    Promise.resolve(handle),
    (error: Error) => error.name === "TaskCancelledError",
  );
  // The same sandbox (its count goes on), which never ran the cancelled task.
  assert.equal(await pool.run(countWith(new Uint8Array(1))), 2);
});

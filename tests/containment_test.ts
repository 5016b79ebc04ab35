// What a sandbox keeps to itself, through a real local pool: its memory
// (heap, array buffers, WebAssembly memory, the workers it starts), its
// globals, its state (locks, broadcast channels, storage) and the worker
// process's signal handling. Running out of memory fails that sandbox's
// tasks only, never the worker process.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  growWasm,
  hoardBuffers,
  holdLock,
  ignoreSigterm,
  listen,
  lockFree,
  nestedWorker,
  patchIntrinsics,
  peek,
  reachWorker,
  speak,
  stash,
  useIntrinsics,
} from "./fixtures/containment.ts";
import { square } from "./fixtures/computes.ts";
import { alive, eventually, localPools, tempRoot } from "./helpers.ts";

const root = await tempRoot();

const start = localPools(root);

/** Fails unless the task failed because its sandbox ran out of memory. */
async function outOfMemory(task: Promise<unknown>, name: string) {
  const error = await task.then(
    (value) => assert.fail(`expected a failure, got ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(error instanceof sky.RemoteError, String(error));
  assert.equal(error.remoteName, "SandboxError", error.message);
  assert.match(
    error.message,
    new RegExp(`compute '${name}' exceeded its memoryLimit of 64 MiB`),
  );
}

Deno.test("memoryLimit bounds array buffers, WebAssembly memory and the workers a task starts; running out fails that sandbox's tasks only", async (t) => {
  await using pool = await start();
  const workerPid = pool.workerPids[0]!;
  await t.step(
    "within the limit, array buffers and memory are there",
    async () => {
      assert.equal(await pool.run(hoardBuffers(8)), 8);
      assert.equal(await pool.run(growWasm(8)), 8 + 1 / 16);
    },
  );
  // (A time limit only so that a sandbox left running fails the test.)
  await t.step("1 GiB of array buffers under a limit of 64 MiB", async () => {
    await outOfMemory(
      pool.run(hoardBuffers(1024).withTimeout(120_000)),
      "hoardBuffers",
    );
    assert.equal(await pool.run(square(3)), 9);
  });
  await t.step(
    "1 GiB of WebAssembly memory under a limit of 64 MiB",
    async () => {
      await outOfMemory(
        pool.run(growWasm(1024).withTimeout(120_000)),
        "growWasm",
      );
      assert.equal(await pool.run(square(4)), 16);
    },
  );
  await t.step(
    "a Web Worker the task starts, allocating without end",
    async () => {
      await outOfMemory(
        pool.run(nestedWorker().withTimeout(120_000)),
        "nestedWorker",
      );
      assert.equal(await pool.run(square(5)), 25);
    },
  );
  assert.equal(pool.workerPids[0], workerPid, "the worker was not restarted");
});

Deno.test("a compute never shares mutable globals with another compute of its module and permissions", async () => {
  await using pool = await start();
  assert.deepEqual(await pool.run(useIntrinsics()), [7, 97]);
  // It patches DataView and TextEncoder for its own sandbox (where it may
  // well break what it runs next), never for another compute's.
  assert.equal(await pool.run(patchIntrinsics()), null);
  assert.deepEqual(
    await pool.run(sky.gather(useIntrinsics(), useIntrinsics())),
    [[7, 97], [7, 97]],
  );
});

Deno.test("no state passes between sandboxes without a permission: locks, broadcast channels, cache and local storage", async (t) => {
  await using pool = await start();
  await t.step(
    "a Web Lock held in one sandbox is not seen in another",
    async () => {
      assert.equal(await pool.run(holdLock("skyward-containment")), true);
      assert.equal(await pool.run(lockFree("skyward-containment")), true);
    },
  );
  await t.step(
    "a broadcast channel does not reach another sandbox",
    async () => {
      assert.deepEqual(await pool.run(listen("listen")), []);
      assert.equal(await pool.run(speak("secret")), null);
      assert.deepEqual(await pool.run(listen("heard")), []);
    },
  );
  await t.step(
    "cache storage and local storage need write permission",
    async () => {
      assert.deepEqual(await pool.run(stash("secret")), [
        "cache refused: NotCapable",
        "localStorage refused: NotCapable",
      ]);
      assert.deepEqual(await pool.run(peek()), []);
    },
  );
  await t.step("nor does anything stored by an earlier pool", async () => {
    await using later = await start();
    assert.deepEqual(await later.run(peek()), []);
  });
});

Deno.test("a sandbox holds exactly its compute's permissions: what it had to load its module is gone", async () => {
  await using pool = await start();
  assert.deepEqual(await pool.run(reachWorker()), ["NotCapable", "prompt"]);
});

Deno.test("a task cannot change how the worker process handles signals", async () => {
  await using pool = await start();
  const workerPid = pool.workerPids[0]!;
  assert.equal(await pool.run(ignoreSigterm()), true);
  Deno.kill(workerPid, "SIGTERM");
  await eventually(
    async () => !(await alive(workerPid)),
    10_000,
    "the worker to end on SIGTERM",
  );
});

import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  chunks,
  countBytes,
  countdown,
  countUp,
  doubled,
  failsAfter,
  nothing,
  readableOf,
  readsTwo,
  sum,
  sumBeside,
  ticks,
  twice,
  waitFor,
  wasmOne,
  whereFrom,
  yieldsFunction,
} from "./fixtures/streams.ts";
import { localPools, tempRoot } from "./helpers.ts";
import { tee } from "../src/wire/stream.ts";

const root = await tempRoot();

const start = localPools(root);

Deno.test("an async generator compute streams its values to `for await` on pool.run()", async () => {
  await using pool = await start();
  const values: number[] = [];
  const stream: AsyncIterable<number> = pool.run(countdown(3));
  for await (const n of stream) values.push(n);
  assert.deepEqual(values, [3, 2, 1]);
  // Awaited, the result is the iterable itself.
  const awaited: AsyncIterable<number> = await pool.run(countdown(2));
  assert.deepEqual(await Array.fromAsync(awaited), [2, 1]);
});

Deno.test("generators, ReadableStreams and empty streams come back as async iterables", async () => {
  await using pool = await start();
  assert.deepEqual(await Array.fromAsync(pool.run(countUp(4))), [0, 1, 2, 3]);
  assert.deepEqual(await Array.fromAsync(pool.run(readableOf(3))), [0, 1, 2]);
  assert.deepEqual(await Array.fromAsync(pool.run(nothing())), []);
  assert.deepEqual(await Array.fromAsync(pool.run(countdown(0))), []);
});

Deno.test("values arrive as the worker yields them, not at the end", async () => {
  await using pool = await start();
  const t0 = performance.now();
  const times: number[] = [];
  for await (const i of pool.run(ticks(200))) {
    times.push(performance.now() - t0);
    if (i === 2) break;
  }
  // The first value came about 400 ms before the third.
  assert.ok(times[2] - times[0] >= 300, JSON.stringify(times));
});

Deno.test("breaking out of the loop returns the generator on the worker: its finally runs there", async () => {
  const logs: string[] = [];
  await using pool = await start({
    onEvent: (e) => e.type === "Log" && logs.push(e.line),
  });
  for await (const i of pool.run(ticks(5))) {
    if (i === 3) break;
  }
  // Leaving the loop waited for the generator to return.
  assert.ok(
    logs.some((l) => /^ticks finally ran after [4-5]$/.test(l)),
    JSON.stringify(logs),
  );
  // The node serves the next task.
  assert.deepEqual(await Array.fromAsync(pool.run(countdown(1))), [1]);
});

Deno.test("an error mid-stream reaches the caller after the values yielded before it", async () => {
  await using pool = await start();
  const seen: number[] = [];
  await assert.rejects(
    async () => {
      for await (const n of pool.run(failsAfter(3))) seen.push(n);
    },
    (error: Error) => {
      assert.ok(error instanceof sky.RemoteError, String(error));
      assert.equal(error.remoteName, "RangeError");
      assert.match(error.message, /failed after 3/);
      return true;
    },
  );
  assert.deepEqual(seen, [0, 1, 2]);
});

Deno.test("a yielded value that cannot be sent is a SerializationError naming it, after the values before", async () => {
  await using pool = await start();
  const seen: unknown[] = [];
  await assert.rejects(
    async () => {
      for await (const v of pool.run(yieldsFunction())) seen.push(v);
    },
    (error: Error) => {
      assert.ok(error instanceof sky.SerializationError, String(error));
      assert.equal(error.path, "yielded[2].onDone");
      return true;
    },
  );
  assert.deepEqual(seen, [1, 2]);
});

Deno.test("a slow consumer holds the worker's generator back (bounded buffers)", async () => {
  const logs: string[] = [];
  await using pool = await start({
    onEvent: (e) => e.type === "Log" && logs.push(e.line),
  });
  let taken = 0;
  for await (const _chunk of pool.run(chunks())) {
    if (++taken === 1) {
      // Unbounded, the generator would make thousands of chunks meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    if (taken === 2) break;
  }
  const made = Number(logs.find((l) => l.startsWith("chunks made"))?.slice(12));
  // An 8 MiB window holds 128 chunks of 64 KiB; one batch more may be on the way.
  assert.ok(made > 2 && made <= 128 + 8, `made ${made}`);
});

Deno.test("an AsyncIterable argument streams in; a ReadableStream arrives as a ReadableStream", async () => {
  await using pool = await start();
  async function* numbers() {
    for (let i = 1; i <= 1000; i++) yield i;
  }
  assert.equal(await pool.run(sum(numbers())), 500500);
  const bytes = new Blob([new Uint8Array(3_000_000)]).stream();
  const counted = await pool.run(countBytes(bytes));
  assert.equal(counted.total, 3_000_000);
  assert.equal(counted.kind, "ReadableStream");
  async function* none(): AsyncGenerator<number> {}
  assert.equal(await pool.run(sum(none())), 0);
});

Deno.test("a worker that reads slowly holds the client's producer back", async () => {
  await using pool = await start();
  let pulled = 0;
  async function* source() {
    for (;;) {
      pulled++;
      yield new Uint8Array(64 * 1024);
    }
  }
  assert.equal(await pool.run(readsTwo(source())), 2);
  // The worker read 2 and left; the client sent at most about a window.
  assert.ok(pulled <= 128 + 8, `pulled ${pulled}`);
});

Deno.test("an input stream's error reaches the function reading it, and the caller", async () => {
  await using pool = await start();
  async function* breaks() {
    yield 1;
    yield 2;
    throw new TypeError("the source broke");
  }
  await assert.rejects(
    () => pool.run(sum(breaks())),
    (error: Error) => {
      assert.ok(error instanceof sky.RemoteError, String(error));
      assert.equal(error.remoteName, "TypeError");
      assert.match(error.message, /the source broke/);
      return true;
    },
  );
});

Deno.test("both directions at once: a stream in, a stream out", async () => {
  await using pool = await start();
  async function* numbers() {
    for (let i = 0; i < 20_000; i++) yield i;
  }
  let expected = 0;
  for await (const n of pool.run(doubled(numbers()))) {
    assert.equal(n, expected * 2);
    expected++;
  }
  assert.equal(expected, 20_000);
});

Deno.test("broadcast() of a generator gives one iterable per node, a streamed argument reaches each node; gather() one per task", async () => {
  await using pool = await start({ nodes: 2 });
  const streams = await pool.broadcast(whereFrom(3));
  assert.equal(streams.length, 2);
  const all = await Promise.all(streams.map((s) => Array.fromAsync(s)));
  assert.deepEqual(all, [[0, 0, 0], [1, 1, 1]]);
  const [a, b] = await pool.run(sky.gather(countdown(2), countdown(3)));
  assert.deepEqual(
    [await Array.fromAsync(a), await Array.fromAsync(b)],
    [[2, 1], [3, 2, 1]],
  );
  const streamed: number[][] = [];
  for await (const s of pool.stream(sky.gather(countdown(1), countdown(2)))) {
    streamed.push(await Array.fromAsync(s));
  }
  assert.deepEqual(streamed, [[1], [2, 1]]);
  // A streamed argument of a broadcast reaches every node whole.
  let pulled = 0;
  async function* numbers() {
    for (let i = 1; i <= 10_000; i++) {
      pulled++;
      yield i;
    }
  }
  assert.deepEqual(await pool.broadcast(sum(numbers())), [50005000, 50005000]);
  assert.equal(pulled, 10_000);
  const bytes = new Blob([new Uint8Array(1_000_000)]).stream();
  const counts = await pool.broadcast(countBytes(bytes));
  assert.deepEqual(counts.map((c) => [c.total, c.kind]), [
    [1_000_000, "ReadableStream"],
    [1_000_000, "ReadableStream"],
  ]);
});

Deno.test("a node lost mid-stream ends the loop with NodeLostError, not silently and not never", async () => {
  await using pool = await start({ retryOnInterruption: 3 });
  const seen: number[] = [];
  await assert.rejects(
    async () => {
      for await (const i of pool.run(ticks(20))) {
        seen.push(i);
        if (i === 2) Deno.kill(pool.workerPids[0]!, "SIGKILL");
      }
    },
    (error: Error) => {
      assert.ok(error instanceof sky.NodeLostError, String(error));
      return true;
    },
  );
  assert.ok(seen.length >= 3, JSON.stringify(seen));
});

Deno.test("map() over an async iterable of unknown length streams each result out as it is ready", async () => {
  await using pool = await start({ nodes: 2 });
  for (const ordered of [true, false]) {
    // Each input is made only once the result of the one before arrived:
    // a map that waited for a full window before yielding would hang.
    let received = 0;
    let arrived: (() => void) | undefined;
    const inputs = async function* () {
      for (let i = 0; i < 5; i++) {
        yield i;
        if (received <= i) await new Promise<void>((r) => arrived = r);
      }
    };
    const results: number[] = [];
    for await (const r of pool.map(twice, inputs(), { ordered })) {
      results.push(r);
      received++;
      arrived?.();
    }
    assert.deepEqual(results, [0, 2, 4, 6, 8]);
  }
  // Unordered, a quick result overtakes a slow one; ordered, it waits.
  const delays = [600, 10];
  const unordered = await Array.fromAsync(
    pool.map(waitFor, delays, { ordered: false }),
  );
  assert.deepEqual(unordered, [10, 600]);
  assert.deepEqual(await pool.map(waitFor, delays), [600, 10]);
});

Deno.test("a worker without sandboxes refuses a streaming task with a clear error", async () => {
  await using pool = await start({
    image: sky.Image({ env: { SKYWARD_UNSAFE_NO_SANDBOX: "1" } }),
  });
  await assert.rejects(
    () => Array.fromAsync(pool.run(countdown(2))),
    /Cannot stream values to or from a worker that runs tasks without sandboxes/,
  );
  async function* one() {
    yield 1;
  }
  await assert.rejects(
    () => pool.run(sum(one())),
    /Cannot stream values to or from a worker that runs tasks without sandboxes/,
  );
  assert.equal(await pool.run(twice(2)), 4);
});

Deno.test("a stream argument to a WASM compute is a clear error", async () => {
  await using pool = await start();
  async function* one() {
    yield 1;
  }
  await assert.rejects(
    () => pool.run(wasmOne(one())),
    /Cannot stream an argument to a WASM sandbox/,
  );
});

Deno.test("a streaming task past its timeout fails the loop with TaskTimeoutError and frees its slot", async () => {
  await using pool = await start();
  assert.deepEqual(await Array.fromAsync(pool.run(countdown(1))), [1]);
  const seen: number[] = [];
  await assert.rejects(
    async () => {
      for await (const i of pool.run(ticks(50).withTimeout(400))) seen.push(i);
    },
    sky.TaskTimeoutError,
  );
  assert.ok(seen.length >= 2, JSON.stringify(seen));
  assert.deepEqual(await Array.fromAsync(pool.run(countdown(2))), [2, 1]);
});

Deno.test("tee() gives every branch every item, the fastest at most `bound` ahead of the slowest", async () => {
  let pulled = 0;
  function* source() {
    for (let i = 0; i < 100; i++) {
      pulled++;
      yield i;
    }
  }
  const [a, b] = tee<number>(source(), 2, 10);
  const first: number[] = [];
  for (let i = 0; i < 10; i++) first.push((await a.next()).value as number);
  const eleventh = a.next();
  const state = await Promise.race([
    eleventh.then(() => "resolved"),
    new Promise((resolve) => setTimeout(() => resolve("waiting"), 100)),
  ]);
  assert.equal(state, "waiting");
  assert.equal(pulled, 10);
  assert.equal((await b.next()).value, 0);
  assert.equal((await eleventh).value, 10);
  const [restA, restB] = await Promise.all([
    Array.fromAsync(a),
    Array.fromAsync(b),
  ]);
  const all = Array.from({ length: 100 }, (_, i) => i);
  assert.deepEqual([...first, 10, ...restA], all);
  assert.deepEqual([0, ...restB], all);
  assert.equal(pulled, 100);
});

Deno.test("a streamed argument beside a large one: its items reach the task, which starts once the large one has all come", async () => {
  await using pool = await start();
  const big = new Uint8Array(4 * 2 ** 20);
  big[big.length - 1] = 7;
  async function* numbers() {
    for (let n = 1; n <= 100; n++) yield n;
  }
  assert.equal(await pool.run(sumBeside(big, numbers())), 7 + 5050);
});

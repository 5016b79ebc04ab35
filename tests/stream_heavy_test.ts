// Heavy streaming tests: a GiB through the pipes. Kept apart from
// stream_test.ts so that the everyday tests stay quick.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { echo } from "./fixtures/computes.ts";
import { echoChunks, twice } from "./fixtures/streams.ts";
import { tempRoot } from "./helpers.ts";

const root = await tempRoot();
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function start(
  options: Partial<sky.PoolOptions> = {},
): Promise<sky.ComputePool> {
  return sky.ComputePool.start({
    provider: sky.Local({ root }),
    console: "silent",
    ...options,
  });
}

/** A process's resident memory now and at its peak since the last reset, in bytes. */
async function memory(
  pid: number | "self",
): Promise<{ rss: number; hwm: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

/** Resets a process's peak resident memory to its current (Linux `clear_refs`). */
async function resetPeak(pid: number | "self"): Promise<void> {
  await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
}

Deno.test("1 GiB streams through a worker and back with client and worker memory bounded", async () => {
  await using pool = await start();
  const worker = pool.workerPids[0]!;
  // Warm the path (sandbox started, code loaded) before measuring.
  async function* one() {
    yield new Uint8Array(1);
  }
  assert.equal((await Array.fromAsync(pool.run(echoChunks(one())))).length, 1);
  // Settle what the test runner allocated before, then measure from here.
  await resetPeak("self");
  await resetPeak(worker);
  const before = { client: await memory("self"), worker: await memory(worker) };
  const CHUNK = 64 * 1024;
  const chunks = GiB / CHUNK;
  async function* source() {
    for (let i = 0; i < chunks; i++) {
      const chunk = new Uint8Array(CHUNK);
      chunk[0] = i & 0xff;
      yield chunk;
    }
  }
  let received = 0;
  let count = 0;
  const t0 = performance.now();
  for await (const chunk of pool.run(echoChunks(source()))) {
    assert.equal(chunk[0], count & 0xff);
    received += chunk.length;
    count++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = { client: await memory("self"), worker: await memory(worker) };
  assert.equal(received, GiB);
  const clientPeak = after.client.hwm - before.client.rss;
  const workerPeak = after.worker.hwm;
  console.log(
    `1 GiB in ${seconds.toFixed(1)} s; client RSS ${
      (before.client.rss / MiB).toFixed(0)
    } MiB before, peak +${(clientPeak / MiB).toFixed(0)} MiB; worker peak ${
      (workerPeak / MiB).toFixed(0)
    } MiB (RSS before ${(before.worker.rss / MiB).toFixed(0)} MiB)`,
  );
  // Unbounded, either side would hold a good part of the GiB.
  assert.ok(clientPeak < 256 * MiB, `client peak +${clientPeak / MiB} MiB`);
  assert.ok(workerPeak < 512 * MiB, `worker peak ${workerPeak / MiB} MiB`);
});

Deno.test("a 1 ms task completes in milliseconds while a 1 GiB value travels on the same connection", async () => {
  await using pool = await start({ worker: { concurrency: 2 } });
  // The small task runs in another sandbox (another module): a sandbox
  // encoding a GiB is busy for seconds, whatever the connection does.
  await pool.run(twice(1));
  const big = new Uint8Array(GiB);
  big[GiB - 1] = 7;
  let inFlight = true;
  const t0 = performance.now();
  const echoed = pool.run(echo(big)).finally(() => inFlight = false);
  const latencies: number[] = [];
  while (inFlight) {
    const t = performance.now();
    assert.equal(await pool.run(twice(3)), 6);
    if (inFlight) latencies.push(performance.now() - t);
  }
  const back = await echoed as Uint8Array;
  const total = performance.now() - t0;
  assert.equal(back.length, GiB);
  assert.equal(back[GiB - 1], 7);
  latencies.sort((a, b) => a - b);
  const p50 = latencies[Math.floor(latencies.length / 2)];
  const max = latencies[latencies.length - 1];
  console.log(
    `1 GiB echo took ${
      total.toFixed(0)
    } ms; ${latencies.length} small tasks meanwhile, ` +
      `p50 ${p50.toFixed(1)} ms, max ${max.toFixed(0)} ms`,
  );
  // Sent as one frame, the value would hold every small task up for the
  // whole transfer in each direction.
  assert.ok(latencies.length >= 20, `${latencies.length} small tasks`);
  assert.ok(max < total / 4, `max ${max} ms of ${total} ms`);
});

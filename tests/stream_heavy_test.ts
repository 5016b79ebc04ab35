// Heavy streaming tests: a GiB through the pipes. Kept apart from
// stream_test.ts so that the everyday tests stay quick.
import assert from "node:assert/strict";
import { echo } from "./fixtures/computes.ts";
import { twice } from "./fixtures/streams.ts";
import { localPools, tempRoot } from "./helpers.ts";

const root = await tempRoot();
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const start = localPools(root);

Deno.test("1 GiB streams through a worker and back with client and worker memory bounded", async () => {
  // The client runs alone in its process: the test runner's own memory
  // (what the files before this one left to collect) is not the client's.
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fixtures/stream_client.ts", import.meta.url).pathname,
      root,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(output.success, "the streaming client failed");
  const { received, inOrder, seconds, before, after } = JSON.parse(
    new TextDecoder().decode(output.stdout),
  );
  assert.equal(received, GiB);
  assert.ok(inOrder, "the chunks came back out of order");
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

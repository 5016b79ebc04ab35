/**
 * Benchmarks of streaming, each beside a baseline measured in the same run:
 *
 * - 1,000,000 small items yielded by an async generator on a worker and
 *   iterated on the client (items/s), beside the same generator iterated
 *   in this process;
 * - a 1 GiB byte stream sent to a worker and streamed back (MB/s), beside
 *   the same bytes echoed by a Deno child process over stdio in frames of
 *   the same size, with no decoding (`echo_server.ts`); rounds of the two
 *   interleaved so that both see the same machine, medians reported.
 *
 * Run with `deno task bench stream`, or `deno run -A bench/stream.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";
import { countTo, echoStream } from "./computes.ts";
import { printTable, row } from "./_util.ts";

const ITEMS = 1_000_000;
const BYTES = 1024 ** 3;
const CHUNK = 64 * 1024;
const ROUNDS = 3;

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** MB/s of `BYTES` echoed in `CHUNK`-sized frames by a child process over stdio. */
async function stdioEcho(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", new URL("./echo_server.ts", import.meta.url).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const frame = new Uint8Array(4 + CHUNK);
  new DataView(frame.buffer).setUint32(0, CHUNK);
  const t0 = performance.now();
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    for (let sent = 0; sent < BYTES; sent += CHUNK) await writer.write(frame);
    await writer.close();
  })();
  let received = 0;
  for await (const chunk of child.stdout) received += chunk.length;
  await writing;
  const seconds = (performance.now() - t0) / 1000;
  await child.status;
  if (received !== (BYTES / CHUNK) * (4 + CHUNK)) {
    throw new Error(`the echo returned ${received} bytes`);
  }
  return BYTES / 1e6 / seconds;
}

async function* chunks(): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(CHUNK);
  for (let sent = 0; sent < BYTES; sent += CHUNK) yield chunk;
}

/** Runs the streaming benchmarks, adding rows to the table. */
export async function streamBenchmarks(): Promise<void> {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    console: "silent",
  });
  {
    await Array.fromAsync(pool.run(countTo(10_000)));
    let t0 = performance.now();
    let count = 0;
    for await (const _ of pool.run(countTo(ITEMS))) count++;
    const remote = ITEMS / ((performance.now() - t0) / 1000);
    if (count !== ITEMS) throw new Error(`received ${count} items`);
    t0 = performance.now();
    for await (const _ of await countTo.local(ITEMS)) count++;
    const local = ITEMS / ((performance.now() - t0) / 1000);
    row(
      `${
        ITEMS.toLocaleString("en")
      } small items yielded by a worker's generator`,
      `${Math.round(remote).toLocaleString("en")} items/s`,
      `same generator in this process: ${
        Math.round(local).toLocaleString("en")
      } items/s`,
      `${(remote / local).toFixed(2)}x`,
    );
  }
  {
    const echoes: number[] = [];
    const rates: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      echoes.push(await stdioEcho());
      const t0 = performance.now();
      let received = 0;
      for await (const chunk of pool.run(echoStream(chunks()))) {
        received += chunk.length;
      }
      rates.push(BYTES / 1e6 / ((performance.now() - t0) / 1000));
      if (received !== BYTES) throw new Error(`received ${received} bytes`);
    }
    const echo = median(echoes);
    const rate = median(rates);
    row(
      "1 GiB byte stream to a worker and back, 64 KiB chunks",
      `${rate.toFixed(0)} MB/s (median of ${ROUNDS})`,
      `stdio frame echo: ${echo.toFixed(0)} MB/s (median of ${ROUNDS})`,
      `${(rate / echo).toFixed(2)}x`,
    );
  }
}

if (import.meta.main) {
  await streamBenchmarks();
  printTable();
}

// Benchmarks of the core on the local provider.
import * as sky from "../mod.ts";
import { noop } from "./computes.ts";
import { ms, percentile, row, timeEach } from "./_util.ts";

const ROUND_TRIPS = 5_000;
const GATHER_TASKS = 10_000;

/** Round trips of a 16-byte frame through a Deno child process echoing frames over stdio. */
async function echoBaseline(): Promise<number[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", new URL("./echo_server.ts", import.meta.url).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const frame = new Uint8Array(4 + 16);
  new DataView(frame.buffer).setUint32(0, 16);
  const times = await timeEach(ROUND_TRIPS, 500, async () => {
    await writer.write(frame);
    let got = 0;
    while (got < frame.length) got += (await reader.read()).value!.length;
  });
  await writer.close();
  reader.releaseLock();
  await child.stdout.cancel();
  await child.status;
  return times;
}

/** (a) round trip, (b) gather throughput, (c) start to first result. */
export async function coreBenchmarks(): Promise<void> {
  {
    const echo = await echoBaseline();
    await using pool = await sky.ComputePool.start({
      provider: sky.Local(),
      console: "silent",
    });
    const rt = await timeEach(ROUND_TRIPS, 500, () => pool.run(noop()));
    row(
      "no-op round trip, warm 1-node local pool",
      `p50 ${ms(percentile(rt, 0.5))}, p99 ${ms(percentile(rt, 0.99))}`,
      `stdio frame echo: p50 ${ms(percentile(echo, 0.5))}, p99 ${
        ms(percentile(echo, 0.99))
      }`,
      `${(percentile(rt, 0.5) / percentile(echo, 0.5)).toFixed(2)}x (p50)`,
    );
  }
  {
    await using pool = await sky.ComputePool.start({
      provider: sky.Local(),
      nodes: 2,
      console: "silent",
    });
    const batch = () =>
      pool.run(
        sky.gather(...Array.from({ length: GATHER_TASKS }, () => noop())),
      );
    const times = await timeEach(5, 2, batch);
    const best = times[0] / 1000;
    const median = percentile(times, 0.5) / 1000;
    row(
      `${GATHER_TASKS} no-op tasks through gather, 2 local nodes`,
      `${Math.round(GATHER_TASKS / median)} tasks/s (median of 5), best ${
        Math.round(GATHER_TASKS / best)
      }`,
      "-",
      "-",
    );
  }
  {
    const start = await timeEach(5, 1, async () => {
      await using pool = await sky.ComputePool.start({
        provider: sky.Local(),
        console: "silent",
      });
      await pool.run(noop());
    });
    const spawn = await timeEach(
      5,
      1,
      () => new Deno.Command(Deno.execPath(), { args: ["eval", "0"] }).output(),
    );
    row(
      "pool start to first result, 1 local node (code already shipped)",
      `median ${ms(percentile(start, 0.5))}`,
      `\`deno eval 0\`: median ${ms(percentile(spawn, 0.5))}`,
      `${(percentile(start, 0.5) / percentile(spawn, 0.5)).toFixed(2)}x`,
    );
  }
}

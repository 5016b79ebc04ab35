/**
 * Benchmarks of the core, each beside a baseline measured in the same run.
 *
 * Run with `deno task bench`. Prints a table of figures and ratios.
 *
 * @module
 */
import * as sky from "../mod.ts";
import { noop } from "./computes.ts";

const ROUND_TRIPS = 5_000;
const GATHER_TASKS = 10_000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function ms(x: number): string {
  return `${x.toFixed(3)} ms`;
}

/** Round trips of a 16-byte frame through a child process echoing frames over stdio. */
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
  const times: number[] = [];
  for (let i = 0; i < ROUND_TRIPS + 500; i++) {
    const t0 = performance.now();
    await writer.write(frame);
    let got = 0;
    while (got < frame.length) got += (await reader.read()).value!.length;
    if (i >= 500) times.push(performance.now() - t0);
  }
  await writer.close();
  reader.releaseLock();
  await child.stdout.cancel();
  await child.status;
  return times.sort((a, b) => a - b);
}

async function roundTrips(pool: sky.ComputePool): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < ROUND_TRIPS + 500; i++) {
    const t0 = performance.now();
    await pool.run(noop());
    if (i >= 500) times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}

const rows: string[][] = [];
function row(...cells: string[]) {
  rows.push(cells);
  console.error(cells.join("  "));
}

// (a) Warm round trip on a 1-node pool, beside the raw stdio echo.
{
  const echo = await echoBaseline();
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    console: "silent",
  });
  const rt = await roundTrips(pool);
  row(
    "no-op round trip, warm 1-node pool",
    `p50 ${ms(percentile(rt, 0.5))}`,
    `p99 ${ms(percentile(rt, 0.99))}`,
    `stdio echo p50 ${ms(percentile(echo, 0.5))}, p99 ${
      ms(percentile(echo, 0.99))
    }`,
    `ratio p50 ${(percentile(rt, 0.5) / percentile(echo, 0.5)).toFixed(2)}x`,
  );
}

// (b) 10,000 no-op tasks through gather on 2 nodes.
{
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 2,
    console: "silent",
  });
  await pool.run(sky.gather(...Array.from({ length: 1000 }, () => noop())));
  const t0 = performance.now();
  await pool.run(
    sky.gather(...Array.from({ length: GATHER_TASKS }, () => noop())),
  );
  const seconds = (performance.now() - t0) / 1000;
  row(
    `${GATHER_TASKS} no-op tasks via gather, 2 nodes`,
    `${Math.round(GATHER_TASKS / seconds)} tasks/s`,
    `(${(seconds * 1000).toFixed(0)} ms)`,
  );
}

// (c) Pool start to first result, 1 node, code already shipped.
{
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await using pool = await sky.ComputePool.start({
      provider: sky.Local(),
      console: "silent",
    });
    await pool.run(noop());
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const spawn = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await new Deno.Command(Deno.execPath(), { args: ["eval", "0"] }).output();
    spawn.push(performance.now() - t0);
  }
  spawn.sort((a, b) => a - b);
  row(
    "pool start to first result, 1 node",
    `median ${ms(percentile(times, 0.5))}`,
    `deno eval start median ${ms(percentile(spawn, 0.5))}`,
    `ratio ${(percentile(times, 0.5) / percentile(spawn, 0.5)).toFixed(2)}x`,
  );
}

console.log("\n| benchmark | result | | baseline (same run) | ratio |");
console.log("| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);

// Benchmarks of the core on the local provider. Each sandboxed figure is
// printed beside the same figure without sandboxes (the client-worker path
// alone, `SKYWARD_UNSAFE_NO_SANDBOX=1`), so that the cost of the sandbox
// channel and that of the rest can be told apart.
import * as sky from "../mod.ts";
import { noop } from "./computes.ts";
import { ms, percentile, row, timeEach } from "./_util.ts";

const ROUND_TRIPS = 5_000;
const GATHER_TASKS = 10_000;

/** Round trips of a 16-byte frame through a Deno child process echoing frames over stdio. */
async function echoOnce(count: number): Promise<number[]> {
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
  const times = await timeEach(count, 500, async () => {
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

/**
 * The echo baseline: three echo processes, one after the other. On the
 * 2-core machine a ping-pong of two processes is fast when the scheduler
 * keeps both on one core and slow when it parts them (p50 about 0.065 ms
 * against 0.1 ms), and which comes is the luck of the process: the ratio is
 * taken against the median of the three.
 */
async function echoBaseline(): Promise<
  { p50: number; p50s: number[]; times: number[] }
> {
  const runs: number[][] = [];
  for (let i = 0; i < 3; i++) runs.push(await echoOnce(ROUND_TRIPS / 2));
  const p50s = runs.map((r) => percentile(r, 0.5));
  const times = runs.flat().sort((a, b) => a - b);
  return { p50: [...p50s].sort((a, b) => a - b)[1], p50s, times };
}

/** A pool's image for the benchmark: sandboxed, or the client-worker path alone. */
function image(sandboxed: boolean): sky.ResolvedImage | undefined {
  return sandboxed
    ? undefined
    : sky.Image({ env: { SKYWARD_UNSAFE_NO_SANDBOX: "1" } });
}

/** Where the time of a pool's start to its first result goes, from its events. */
interface StartBreakdown {
  /** `ComputePool.start()` called to the worker's launch (bundle, provider, code). */
  launch: number;
  /** The worker's launch to its handshake (the node is ready). */
  worker: number;
  /** The node ready to the first result (its sandbox, the task). */
  task: number;
  total: number;
}

async function startToFirstResult(): Promise<StartBreakdown> {
  const t0 = performance.now();
  let launched = 0;
  let ready = 0;
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    console: "silent",
    onEvent(event) {
      if (event.type === "BootstrapPhase" && event.phase === "worker") {
        if (event.status === "started") launched = performance.now();
      }
      if (event.type === "NodeReady") ready = performance.now();
    },
  });
  await pool.run(noop());
  const done = performance.now();
  return {
    launch: launched - t0,
    worker: ready - launched,
    task: done - ready,
    total: done - t0,
  };
}

/** (a) round trip, (b) gather throughput, (c) start to first result. */
export async function coreBenchmarks(): Promise<void> {
  const echo = await echoBaseline();
  const echoP50 = echo.p50;
  const echoSays = `stdio frame echo: p50 ${
    ms(echoP50)
  } (median of 3 processes: ${
    echo.p50s.map((x) => x.toFixed(3)).join(", ")
  }), p99 ${ms(percentile(echo.times, 0.99))}`;
  for (const sandboxed of [true, false]) {
    await using pool = await sky.ComputePool.start({
      provider: sky.Local(),
      console: "silent",
      image: image(sandboxed),
    });
    const rt = await timeEach(ROUND_TRIPS, 500, () => pool.run(noop()));
    row(
      `no-op round trip, warm 1-node local pool${
        sandboxed ? "" : ", no sandbox (client-worker path alone)"
      }`,
      `p50 ${ms(percentile(rt, 0.5))}, p99 ${ms(percentile(rt, 0.99))}`,
      echoSays,
      `${(percentile(rt, 0.5) / echoP50).toFixed(2)}x (p50)`,
    );
  }
  for (const sandboxed of [true, false]) {
    await using pool = await sky.ComputePool.start({
      provider: sky.Local(),
      nodes: 2,
      console: "silent",
      image: image(sandboxed),
    });
    const batch = () =>
      pool.run(
        sky.gather(...Array.from({ length: GATHER_TASKS }, () => noop())),
      );
    const times = await timeEach(5, 2, batch);
    const best = times[0] / 1000;
    const median = percentile(times, 0.5) / 1000;
    row(
      `${GATHER_TASKS} no-op tasks through gather, 2 local nodes${
        sandboxed ? "" : ", no sandbox"
      }`,
      `${Math.round(GATHER_TASKS / median)} tasks/s (median of 5), best ${
        Math.round(GATHER_TASKS / best)
      }`,
      "-",
      "-",
    );
  }
  {
    const runs: StartBreakdown[] = [];
    await startToFirstResult(); // The code shipped once, as the row says.
    for (let i = 0; i < 5; i++) runs.push(await startToFirstResult());
    runs.sort((a, b) => a.total - b.total);
    const median = runs[2];
    const spawn = await timeEach(
      5,
      1,
      () => new Deno.Command(Deno.execPath(), { args: ["eval", "0"] }).output(),
    );
    row(
      "pool start to first result, 1 local node (code already shipped)",
      `median ${ms(median.total)} (launch ${ms(median.launch)}, worker ${
        ms(median.worker)
      }, sandbox and task ${ms(median.task)})`,
      `\`deno eval 0\`: median ${ms(percentile(spawn, 0.5))}`,
      `${(median.total / percentile(spawn, 0.5)).toFixed(2)}x`,
    );
  }
}

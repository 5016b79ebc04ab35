/**
 * Benchmarks of the sandboxes, each beside a baseline measured in the same
 * run:
 *
 * - a warm sandboxed no-op round trip, beside the same on a worker that runs
 *   tasks without sandboxes (`SKYWARD_UNSAFE_NO_SANDBOX=1`, the dispatch as
 *   it was before sandboxes), rounds interleaved so that both see the same
 *   machine;
 * - 10,000 no-op tasks through `gather` on 2 nodes, sandboxed and not;
 * - a task with `isolation: "task"` (a fresh sandbox each), beside a warm one;
 * - a WASM call (a fresh QuickJS runtime and context each), beside a warm
 *   Deno sandbox, and QuickJS alone in this process;
 * - the first task of a new permission set on a warm node (a sandbox
 *   process started for it), and fresh sandboxes (`isolation: "task"`)
 *   back to back, beside a bare `deno eval 0` and a bare Web Worker, both
 *   timed in the same run; these computes sit in a
 *   module that imports only what a node needs (`node_computes.ts`), so
 *   that the library's client does not weigh on the figure;
 * - a small task while a 512 MiB `Uint8Array` result of the same sandbox is
 *   returned, beside the time to make such an array here.
 *
 * Run with `deno task bench sandbox`, or `deno run -A bench/sandbox.ts`
 * (`deno run -A bench/sandbox.ts start` runs the last two parts only).
 *
 * @module
 */
import * as sky from "../mod.ts";
import { loadQuickJS, runFunction } from "../worker/sandbox/wasm.ts";
import { ms, percentile, printTable, row, timeEach } from "./_util.ts";
import {
  bigBytes,
  nodeFresh,
  nodeNoop,
  ownSet,
  small,
} from "./node_computes.ts";

export const noop = sky.compute(() => null);
export const fresh = sky.compute(() => null, { isolation: "task" });
export const wasmNoop = sky.compute(() => null, { sandbox: "wasm" });
export const wasmSquare = sky.compute((x: number) => x * x, {
  sandbox: "wasm",
});

const ROUNDS = 5;
const PER_ROUND = 1_000;
const GATHER_TASKS = 10_000;

const UNSANDBOXED = sky.Image({ env: { SKYWARD_UNSAFE_NO_SANDBOX: "1" } });

function start(options: Partial<sky.PoolOptions> = {}) {
  return sky.ComputePool.start({
    provider: sky.Local(),
    console: "silent",
    ...options,
  });
}

function figures(times: number[]): string {
  const sorted = [...times].sort((a, b) => a - b);
  return `p50 ${ms(percentile(sorted, 0.5))}, p99 ${
    ms(percentile(sorted, 0.99))
  }`;
}

/** A bare `deno eval 0`, started and ended, in ms. */
async function denoEval(): Promise<number> {
  const t0 = performance.now();
  await new Deno.Command(Deno.execPath(), {
    args: ["eval", "0"],
    stdout: "null",
    stderr: "null",
  }).output();
  return performance.now() - t0;
}

/** A bare Web Worker, started until its first message, in ms. */
async function bareWorker(): Promise<number> {
  const t0 = performance.now();
  const url = URL.createObjectURL(
    new Blob(["postMessage(0)"], { type: "text/javascript" }),
  );
  const worker = new Worker(url, { type: "module" });
  await new Promise((resolve) => worker.onmessage = resolve);
  const time = performance.now() - t0;
  worker.terminate();
  URL.revokeObjectURL(url);
  return time;
}

async function times(n: number, fn: () => Promise<number>) {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out.sort((a, b) => a - b);
}

/**
 * Sandbox starts: a new permission set on a warm node, fresh sandboxes back
 * to back, and a small task beside a 512 MiB result.
 */
export async function sandboxStartBenchmarks(): Promise<void> {
  const evals = await times(10, denoEval);
  const workers = await times(10, bareWorker);
  const baseline = `\`deno eval 0\`: ${figures(evals)}; bare Web Worker: ${
    figures(workers)
  }`;
  {
    await using pool = await start();
    await pool.run(nodeNoop());
    const firsts: number[] = [];
    for (const task of ownSet) {
      // A pause: the node is warm and idle when the new set comes.
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      await pool.run(task());
      firsts.push(performance.now() - t0);
    }
    firsts.sort((a, b) => a - b);
    row(
      "first task of a new permission set, warm node",
      figures(firsts),
      baseline,
      `${
        (percentile(firsts, 0.5) / percentile(evals, 0.5)).toFixed(2)
      }x deno eval 0`,
    );
  }
  {
    await using pool = await start();
    await pool.run(nodeFresh());
    await new Promise((r) => setTimeout(r, 1_000));
    const backToBack = await timeEach(20, 0, () => pool.run(nodeFresh()));
    row(
      'isolation: "task", fresh sandboxes back to back',
      figures(backToBack),
      baseline,
      `${
        (percentile(backToBack, 0.5) / percentile(evals, 0.5)).toFixed(2)
      }x deno eval 0`,
    );
  }
  {
    // Two slots: the small task is sent to the node while the array is made.
    await using pool = await start({ worker: { concurrency: 2 } });
    await pool.run(bigBytes(1));
    await pool.run(small(1));
    const produce = await times(3, () => {
      const t0 = performance.now();
      new Uint8Array(512 * 2 ** 20).fill(7);
      return Promise.resolve(performance.now() - t0);
    });
    const waits: number[] = [];
    const wholes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const big = pool.run(bigBytes(512)).then(() => performance.now() - t0);
      // Sent while the array is made, in the same sandbox: it runs once the
      // array is made, and must not wait for the array to be sent.
      const wait = await pool.run(bigBytes(0)).then(() =>
        performance.now() - t0
      );
      waits.push(wait);
      wholes.push(await big);
    }
    waits.sort((a, b) => a - b);
    wholes.sort((a, b) => a - b);
    row(
      "small task while a 512 MiB Uint8Array result of its sandbox is returned",
      `small task done ${
        figures(waits)
      } after both were sent; the 512 MiB result ${figures(wholes)}`,
      `making the array here: ${figures(produce)}`,
      `+${
        ms(percentile(waits, 0.5) - percentile(produce, 0.5))
      } p50 beyond making it`,
    );
  }
}

/** Runs the sandbox benchmarks, adding rows to the table. */
export async function sandboxBenchmarks(): Promise<void> {
  // (a) Warm no-op round trip, sandboxed and not, interleaved.
  {
    await using sandboxed = await start();
    await using plain = await start({ image: UNSANDBOXED });
    const a: number[] = [];
    const b: number[] = [];
    await timeEach(500, 0, () => sandboxed.run(noop()));
    await timeEach(500, 0, () => plain.run(noop()));
    for (let round = 0; round < ROUNDS; round++) {
      a.push(...await timeEach(PER_ROUND, 50, () => sandboxed.run(noop())));
      b.push(...await timeEach(PER_ROUND, 50, () => plain.run(noop())));
    }
    a.sort((x, y) => x - y);
    b.sort((x, y) => x - y);
    const delta = percentile(a, 0.5) - percentile(b, 0.5);
    row(
      "no-op round trip, warm Deno sandbox, 1 node",
      figures(a),
      `no sandbox: ${figures(b)}`,
      `+${ms(delta)} p50`,
    );
  }

  // (b) Gather throughput on 2 nodes, sandboxed and not.
  {
    const rate = async (options: Partial<sky.PoolOptions>) => {
      await using pool = await start({ nodes: 2, ...options });
      await pool.run(sky.gather(...Array.from({ length: 1_000 }, noop)));
      const t0 = performance.now();
      await pool.run(sky.gather(...Array.from({ length: GATHER_TASKS }, noop)));
      return GATHER_TASKS / ((performance.now() - t0) / 1000);
    };
    const sandboxed = await rate({});
    const plain = await rate({ image: UNSANDBOXED });
    row(
      `${GATHER_TASKS} no-op tasks via gather, 2 nodes, sandboxed`,
      `${Math.round(sandboxed)} tasks/s`,
      `no sandbox: ${Math.round(plain)} tasks/s`,
      `${(sandboxed / plain).toFixed(2)}x`,
    );
  }

  // (c) isolation: "task", beside a warm shared sandbox.
  {
    await using pool = await start();
    await pool.run(fresh());
    const warm = await timeEach(200, 20, () => pool.run(noop()));
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      // A pause between tasks lets the next fresh sandbox finish starting.
      await new Promise((r) => setTimeout(r, 1_500));
      const t0 = performance.now();
      await pool.run(fresh());
      times.push(performance.now() - t0);
    }
    const backToBack = await timeEach(10, 0, () => pool.run(fresh()));
    row(
      'isolation: "task", a fresh sandbox per task',
      `started ahead: ${figures(times)}; back to back: ${figures(backToBack)}`,
      `warm shared sandbox: ${figures(warm)}`,
      `+${
        ms(percentile(times.sort((x, y) => x - y), 0.5) - percentile(warm, 0.5))
      } p50 (started ahead)`,
    );
  }

  // (d) A WASM call with a fresh QuickJS runtime and context.
  {
    await using pool = await start();
    await pool.run(wasmNoop());
    const deno = await timeEach(1_000, 100, () => pool.run(noop()));
    const wasm = await timeEach(1_000, 100, () => pool.run(wasmSquare(3)));
    const engine = await loadQuickJS();
    const local = await timeEach(
      1_000,
      100,
      () => Promise.resolve(runFunction(engine, "(x) => x * x", [3])),
    );
    row(
      "WASM call (QuickJS, fresh runtime and context per call)",
      `round trip ${figures(wasm)}; QuickJS alone ${figures(local)}`,
      `warm Deno sandbox round trip: ${figures(deno)}`,
      `+${ms(percentile(wasm, 0.5) - percentile(deno, 0.5))} p50`,
    );
  }
  await sandboxStartBenchmarks();
}

if (import.meta.main) {
  if (Deno.args[0] === "start") await sandboxStartBenchmarks();
  else await sandboxBenchmarks();
  printTable();
}

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
 *   Deno sandbox, and QuickJS alone in this process.
 *
 * Run with `deno task bench sandbox`, or `deno run -A bench/sandbox.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";
import { loadQuickJS, runFunction } from "../worker/sandbox/wasm.ts";
import { ms, percentile, printTable, row, timeEach } from "./_util.ts";

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
}

if (import.meta.main) {
  await sandboxBenchmarks();
  printTable();
}

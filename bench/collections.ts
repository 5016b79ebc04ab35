// Benchmarks of the collections on 2 local nodes: counter increments per
// second, and a queue's put→get hand-off, beside the pool's no-op round trip
// measured in the same run (the goals: ≥ 20,000 increments/s from 2 nodes,
// hand-off p50 ≤ 2× the round trip). `collectionBenchmarks` takes the
// backend, so that each one is measured the same way.
import * as sky from "../mod.ts";
import type { CollectionsOption } from "../src/collections/backend.ts";
import { ms, percentile, row, timeEach } from "./_util.ts";

const ROUND_TRIPS = 2_000;
/** Increments per node. */
const INCREMENTS = 50_000;
/** Calls each node keeps in flight. */
const IN_FLIGHT = 64;
const HANDOFFS = 2_000;

/** Adds 1 to counter `name` `n` times, `parallel` calls in flight; returns the seconds it took. */
export const incrementMany = sky.compute(
  async (name: string, n: number, parallel: number) => {
    const counter = sky.counter(name);
    let left = n;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (left > 0) {
          left--;
          await counter.add(1);
        }
      }),
    );
    return (performance.now() - t0) / 1000;
  },
);

/**
 * Puts a value in queue `ping` and waits for it in queue `pong`, `n` times
 * after `warmup`: the sorted times of the round trips (two hand-offs each), in ms.
 */
export const pingPong = sky.compute(
  async (ping: string, pong: string, n: number, warmup: number) => {
    const out = sky.queue<number>(ping);
    const back = sky.queue<number>(pong);
    const times: number[] = [];
    for (let i = 0; i < n + warmup; i++) {
      const t0 = performance.now();
      // Waiting already when the value comes back, as a consumer would be.
      const got = back.get();
      await out.put(i);
      await got;
      if (i >= warmup) times.push(performance.now() - t0);
    }
    await out.close();
    return times.sort((a, b) => a - b);
  },
);

/** Passes each value of queue `ping` to queue `pong`, until `ping` is closed. */
export const echo = sky.compute(async (ping: string, pong: string) => {
  const back = sky.queue<number>(pong);
  const source = sky.queue<number>(ping);
  // The next get waits while the value goes back.
  for (let next = source.get();;) {
    let value: number;
    try {
      value = await next;
    } catch {
      return; // closed
    }
    next = source.get();
    await back.put(value);
  }
});

/** A task that does nothing. */
export const nothing = sky.compute(() => 0);

/**
 * Measures the collections of one backend on 2 local nodes.
 *
 * @param label The backend's name in the table.
 * @param collections The pool's `collections` option (default: embedded).
 */
export async function collectionBenchmarks(
  label = "embedded",
  collections?: CollectionsOption,
): Promise<void> {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 2,
    console: "silent",
    ...(collections ? { collections } : {}),
  });
  const rt = await timeEach(
    ROUND_TRIPS,
    200,
    () => pool.run(nothing(), { node: 0 }),
  );
  const rtP50 = percentile(rt, 0.5);
  const roundTrip = `no-op round trip (same pool): p50 ${ms(rtP50)}`;

  // Increments: both nodes at once, each with calls in flight; the rate over
  // the slower node's time.
  await pool.broadcast(incrementMany("warm", 2_000, IN_FLIGHT));
  const seconds = await pool.broadcast(
    incrementMany("hits", INCREMENTS, IN_FLIGHT),
  );
  const total = await pool.counter("hits").value();
  const rate = total / Math.max(...seconds);
  row(
    `${label} collections: counter increments from 2 local nodes (${IN_FLIGHT} in flight each)`,
    `${Math.round(rate)} increments/s`,
    roundTrip,
    `goal ≥ 20000/s: ${rate >= 20_000 ? "met" : "missed"}`,
  );

  // Hand-off: node 0 puts, node 1 gets and puts back, node 0 gets.
  const echoing = pool.run(echo("ping", "pong"), { node: 1 });
  const times = await pool.run(pingPong("ping", "pong", HANDOFFS, 200), {
    node: 0,
  });
  await echoing;
  const handoff = percentile(times, 0.5) / 2;
  row(
    `${label} collections: queue put→get hand-off between 2 local nodes`,
    `p50 ${ms(handoff)}, p99 ${ms(percentile(times, 0.99) / 2)}`,
    roundTrip,
    `${(handoff / rtP50).toFixed(2)}x the round trip (goal ≤ 2x)`,
  );
}

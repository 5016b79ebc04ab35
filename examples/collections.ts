/**
 * Collections shared by the client and its nodes: the client feeds a work
 * queue that 3 nodes drain, shows their progress from a counter, and a
 * barrier separates the two phases of the nodes' work — squaring the
 * numbers, then one node summing the squares the others stored.
 *
 * Run it with `deno run -A examples/collections.ts`. The collections are
 * served by the client over the pool's own connections: it works the same
 * on every provider.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** How many numbers the client puts in the queue. */
export const ITEMS = 60;

/**
 * Phase 1: squares the numbers of queue `work` until it is closed and
 * empty, storing each square and counting it. Phase 2, once every node is
 * done: the first node through the barrier sums the squares.
 */
export const squareAll = sky.compute(async () => {
  const squares = sky.dict<number>("squares");
  const done = sky.counter("done");
  let mine = 0;
  for await (const n of sky.queue<number>("work")) {
    await new Promise((r) => setTimeout(r, 20)); // the work itself
    await squares.set(String(n), n * n);
    await done.add(1);
    mine++;
  }
  const place = await sky.barrier("phase", 3).wait({ timeout: 60_000 });
  let sum: number | undefined;
  if (place === 0) {
    sum = 0;
    for await (const square of squares.values()) sum += square;
  }
  return { node: sky.instanceInfo().node, squared: mine, sum };
});

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 3,
    console: "silent",
  });
  const running = pool.broadcast(squareAll());
  const work = pool.queue<number>("work");
  for (let n = 1; n <= ITEMS; n++) await work.put(n);
  await work.close(); // the nodes' loops end once the queue is empty
  const done = pool.counter("done");
  let finished = false;
  running.finally(() => finished = true);
  while (!finished) {
    console.log(`progress: ${await done.value()}/${ITEMS}`);
    await Promise.race([running, new Promise((r) => setTimeout(r, 100))]);
  }
  const reports = await running;
  for (const r of reports) console.log(`node ${r.node} squared ${r.squared}`);
  console.log(
    `sum of squares: ${reports.find((r) => r.sum !== undefined)!.sum}`,
  );
  // 1² + … + 60² = 73810
}

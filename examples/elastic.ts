/**
 * An elastic pool: it starts with no node, wakes for the first task, grows
 * to four nodes while tasks wait, and goes back to zero once idle. Each node
 * takes tasks only after its health check passed, and is replaced when the
 * check fails three times in a row.
 *
 * Run it with `deno run -A examples/elastic.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** The health check: the node has at least 64 MiB of memory available. */
export const healthy = sky.compute(
  () => Deno.systemMemoryInfo().available > 64 * 2 ** 20,
  { permissions: { sys: true } },
);

/** Half a second of "work", reporting where it ran. */
export const crunch = sky.compute(async (n: number) => {
  await new Promise((r) => setTimeout(r, 500));
  return { n, node: sky.instanceInfo().node };
});

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: { min: 0, max: 4, cooldown: 1_000, idleTimeout: 3_000 },
    healthCheck: { fn: healthy, interval: 5_000 },
    console: "log",
  });
  console.log(`nodes at the start: ${pool.size}`); // 0
  const results = await pool.map(
    crunch,
    Array.from({ length: 24 }, (_, i) => i),
  );
  const nodes = new Set(results.map((r) => r.node));
  console.log(`24 tasks ran on nodes ${[...nodes].sort().join(", ")}`);
  // Idle past `idleTimeout`, the nodes are retired: the pool scales to zero.
  await new Promise((r) => setTimeout(r, 6_000));
  console.log(`nodes once idle: ${pool.size}`); // 0
  // resize() sets the size now, and makes it the pool's new minimum.
  await pool.resize(2);
  console.log(await pool.broadcast(crunch(0))); // one result per node: nodes 0 and 1
}

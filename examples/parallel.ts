/**
 * The seed's parallel example: `gather` dispatches tasks concurrently, `all`
 * does the same with a fixed set of tasks and typed results.
 *
 * Run it with `deno run -A examples/parallel.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** Squares a number on a node. */
export const square = sky.compute((x: number) => x * x);

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 2,
  });
  const results = await pool.run(sky.gather(square(1), square(2), square(3)));
  console.log(results); // [1, 4, 9]
  const [a, b, c] = await pool.run(sky.all(square(4), square(5), square(6)));
  console.log(a, b, c); // 16 25 36
}

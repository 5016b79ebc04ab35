/**
 * The seed's first example: one function on one remote node.
 *
 * Run it with `deno run -A examples/hello.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** This function runs on a node. */
export const hello = sky.compute(
  () => `Hello from ${Deno.hostname()} (pid ${Deno.pid})!`,
  // Reading the host name is a permission the task's sandbox must be given.
  { permissions: { sys: ["hostname"] } },
);

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({ provider: sky.Local() });
  console.log(await pool.run(hello()));
}

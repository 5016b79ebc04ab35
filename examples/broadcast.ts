/**
 * The seed's multi-node example: `broadcast` runs a function on every node;
 * `instanceInfo()` tells each one where it runs.
 *
 * Run it with `deno run -A examples/broadcast.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** Describes the node it runs on. */
export const workerInfo = sky.compute(() => {
  const info = sky.instanceInfo();
  return { node: info.node, total: info.totalNodes, isHead: info.isHead };
});

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 4,
  });
  for (const r of await pool.broadcast(workerInfo())) {
    console.log(`Node ${r.node}/${r.total} (head=${r.isHead})`);
  }
}

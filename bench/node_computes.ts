// Computes for the sandbox benchmarks, in a module that imports only what a
// node needs (the compute registry), not the whole client library: the start
// of a sandbox is measured without the cost of loading the client.
import { compute } from "../src/compute.ts";

export const nodeNoop = compute(() => null, { name: "nodeNoop" });
export const nodeFresh = compute(() => null, {
  name: "nodeFresh",
  isolation: "task",
});
/** Fills a `Uint8Array` of `mib` MiB. */
export const bigBytes = compute(
  (mib: number) => new Uint8Array(mib * 2 ** 20).fill(7),
  { name: "bigBytes" },
);
export const small = compute((x: number) => x + 1, { name: "small" });

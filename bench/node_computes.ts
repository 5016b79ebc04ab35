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

/** Computes of ten permission sets (each may read one environment variable
 * of its own): the first task of each starts a sandbox of a new set. */
export const ownSet0 = compute(() => 0, {
  name: "ownSet0",
  permissions: { env: ["SKYWARD_BENCH_0"] },
});
export const ownSet1 = compute(() => 1, {
  name: "ownSet1",
  permissions: { env: ["SKYWARD_BENCH_1"] },
});
export const ownSet2 = compute(() => 2, {
  name: "ownSet2",
  permissions: { env: ["SKYWARD_BENCH_2"] },
});
export const ownSet3 = compute(() => 3, {
  name: "ownSet3",
  permissions: { env: ["SKYWARD_BENCH_3"] },
});
export const ownSet4 = compute(() => 4, {
  name: "ownSet4",
  permissions: { env: ["SKYWARD_BENCH_4"] },
});
export const ownSet5 = compute(() => 5, {
  name: "ownSet5",
  permissions: { env: ["SKYWARD_BENCH_5"] },
});
export const ownSet6 = compute(() => 6, {
  name: "ownSet6",
  permissions: { env: ["SKYWARD_BENCH_6"] },
});
export const ownSet7 = compute(() => 7, {
  name: "ownSet7",
  permissions: { env: ["SKYWARD_BENCH_7"] },
});
export const ownSet8 = compute(() => 8, {
  name: "ownSet8",
  permissions: { env: ["SKYWARD_BENCH_8"] },
});
export const ownSet9 = compute(() => 9, {
  name: "ownSet9",
  permissions: { env: ["SKYWARD_BENCH_9"] },
});
export const ownSet = [
  ownSet0,
  ownSet1,
  ownSet2,
  ownSet3,
  ownSet4,
  ownSet5,
  ownSet6,
  ownSet7,
  ownSet8,
  ownSet9,
];

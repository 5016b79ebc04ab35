/**
 * The collection handles, together: what `pool.dict(...)` and the others
 * make (each is documented in its own file).
 *
 * @module
 */
export { Dict } from "./dict.ts";
export { SharedSet } from "./set.ts";
export { Counter } from "./counter.ts";
export { Queue } from "./queue.ts";
export { Barrier } from "./barrier.ts";
export { Lock } from "./lock.ts";

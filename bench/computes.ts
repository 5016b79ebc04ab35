// Computes the benchmarks run. Workers import this module from the shipped code.
import * as sky from "../mod.ts";

export const noop = sky.compute(() => null);
export const echo = sky.compute((value: Uint8Array) => value);

// Computes the benchmarks run. Workers import this module from the shipped code.
import * as sky from "../mod.ts";

export const noop = sky.compute(() => null);
export const echo = sky.compute((value: Uint8Array) => value);

/** Yields the numbers from 0 to `n - 1`. */
export const countTo = sky.compute(async function* (n: number) {
  for (let i = 0; i < n; i++) yield i;
});

/** Passes each chunk of a byte stream back as it comes. */
export const echoStream = sky.compute(
  async function* (chunks: AsyncIterable<Uint8Array>) {
    for await (const chunk of chunks) yield chunk;
  },
);

/**
 * Streaming: an async generator compute yields its values back one by one,
 * an `AsyncIterable` or `ReadableStream` argument streams in, with
 * backpressure both ways, and `pool.map` applies a compute to an input of
 * unknown length with its results streamed out.
 *
 * Run it with `deno run -A examples/streaming.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** Counts down from `n`, one value at a time. */
export const countdown = sky.compute(async function* (n: number) {
  for (let i = n; i > 0; i--) yield i;
});

/** Upper-cases each line it is sent, as it comes. */
export const shout = sky.compute(
  async function* (lines: AsyncIterable<string>) {
    for await (const line of lines) yield line.toUpperCase();
  },
);

/** Counts the bytes of a byte stream. */
export const countBytes = sky.compute(
  async (data: ReadableStream<Uint8Array>) => {
    let total = 0;
    for await (const chunk of data) total += chunk.length;
    return total;
  },
);

/** Squares a number. */
export const square = sky.compute((x: number) => x * x);

async function* lines(): AsyncGenerator<string> {
  yield "first line";
  yield "second line";
}

async function* numbers(): AsyncGenerator<number> {
  for (let i = 1; i <= 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    yield i;
  }
}

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 2,
  });
  for await (const n of pool.run(countdown(3))) console.log(n); // 3, 2, 1
  for await (const line of pool.run(shout(lines()))) console.log(line);
  const bytes = new Blob([new Uint8Array(1_000_000)]).stream();
  console.log(await pool.run(countBytes(bytes))); // 1000000
  for await (const sq of pool.map(square, numbers(), { ordered: false })) {
    console.log(sq); // 1, 4, 9, 16, 25 as they complete
  }
}

/**
 * What the pool's verbs hand back: {@linkcode TaskHandle} from
 * `pool.submit`, {@linkcode RunResult} from `pool.run` (a promise that a
 * streamed result also lets you iterate), {@linkcode MapResults} from
 * `pool.map`.
 *
 * @module
 */

/**
 * A task in flight: await it for its result, or cancel it.
 *
 * @typeParam R The task's result.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { square } from "../../examples/parallel.ts";
 *
 * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
 * const handle: sky.TaskHandle<number> = pool.submit(square(5));
 * console.log(await handle); // 25
 * ```
 */
export interface TaskHandle<R> extends PromiseLike<R> {
  /** The task's id in events. */
  readonly id: number;
  /** Cancels the task; awaiting it then rejects with `TaskCancelledError`. */
  cancel(): void;
}

/**
 * What {@linkcode ComputePool.run} returns: a promise of the result, which
 * for a streamed result (an `AsyncIterable<T>`) can also be iterated
 * directly.
 *
 * @typeParam R The task's (or group's) result.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { countdown } from "../../examples/streaming.ts";
 *
 * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
 * const stream: sky.RunResult<AsyncIterable<number>> = pool.run(countdown(2));
 * for await (const n of stream) console.log(n); // 2, 1
 * ```
 */
export type RunResult<R> = [R] extends [never] ? Promise<R>
  : [R] extends [AsyncIterable<infer T>] ? Promise<R> & AsyncIterable<T>
  : Promise<R>;

/**
 * Results of {@linkcode ComputePool.map}: iterate them as they come, or
 * await them all.
 *
 * @typeParam R The result of one input.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { square } from "../../examples/parallel.ts";
 *
 * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
 * const results: sky.MapResults<number> = pool.map(square, [1, 2, 3]);
 * for await (const r of results) console.log(r); // 1, 4, 9
 * ```
 */
export interface MapResults<R> extends AsyncIterable<R>, PromiseLike<R[]> {}

/**
 * Makes a result promise iterable, for `pool.run`: iterating it awaits the
 * result, then yields its items; a result that is not a stream is a
 * `TypeError`.
 *
 * @example
 * ```ts
 * import { runResult } from "./handles.ts";
 *
 * async function* countdown() {
 *   yield 2;
 *   yield 1;
 * }
 * for await (const n of runResult(Promise.resolve(countdown()))) console.log(n); // 2, 1
 * ```
 */
export function runResult<R>(promise: Promise<R>): RunResult<R> {
  return Object.assign(promise, {
    [Symbol.asyncIterator]: () => iterateResult(promise),
  }) as unknown as RunResult<R>;
}

/** The items of a streamed result, once it has resolved. */
async function* iterateResult<T>(
  result: Promise<unknown>,
): AsyncGenerator<T, void, undefined> {
  const value = await result;
  if (
    typeof value !== "object" || value === null ||
    typeof (value as AsyncIterable<T>)[Symbol.asyncIterator] !== "function"
  ) {
    throw new TypeError(
      "Cannot iterate the result of pool.run(): the task's result is not a stream " +
        "(await it instead)",
    );
  }
  yield* value as AsyncIterable<T>;
}

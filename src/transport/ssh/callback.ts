/**
 * Node-style callbacks of `ssh2` as promises, their errors worded by the
 * caller: see {@linkcode settle}.
 *
 * @module
 */

/**
 * Calls a function that takes a Node-style callback and settles with what
 * the callback gets; a failure (passed to the callback, or thrown) becomes
 * `wrap(error)`.
 *
 * @param fn Starts the operation, passing it the callback.
 * @param wrap Words a failure.
 * @returns What the operation gave.
 *
 * @example
 * ```ts
 * import { settle } from "./callback.ts";
 *
 * const value = await settle<number>((cb) => cb(null, 42), (e) => e as Error);
 * console.log(value); // 42
 * ```
 */
export function settle<T>(
  fn: (callback: (error: Error | null | undefined, value: T) => void) => void,
  wrap: (error: unknown) => Error,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((error, value) => error ? reject(wrap(error)) : resolve(value));
    } catch (error) {
      reject(wrap(error));
    }
  });
}

/**
 * Timers the library shares: {@linkcode sleep} that an `AbortSignal` ends,
 * and {@linkcode after}, a timeout of any length that does not keep the
 * process alive by itself.
 *
 * @module
 */

/**
 * Waits `ms` milliseconds, or until `signal` aborts.
 *
 * @param ms How long to wait, in milliseconds.
 * @param signal Ends the wait early: the promise rejects with its reason.
 * @returns A promise that resolves after `ms`.
 * @throws The signal's reason, when it aborts first.
 *
 * @example
 * ```ts
 * import { sleep } from "./_timers.ts";
 *
 * await sleep(5);
 * await sleep(1_000, AbortSignal.timeout(5)).catch((e) => console.log(e.name)); // TimeoutError
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Options of {@linkcode after}. */
export interface AfterOptions {
  /**
   * Whether the timer keeps the program alive, as `setTimeout` does.
   * @default true
   */
  keepAlive?: boolean;
}

/** The longest delay `setTimeout` takes before it fires at once instead. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Calls `fn` once after `ms` milliseconds, for any `ms` (a single
 * `setTimeout` of 2³¹ ms or more fires at once).
 *
 * @param ms The delay, in milliseconds; negative counts as 0.
 * @param fn What to call.
 * @param options Whether the timer keeps the program alive.
 * @returns A function that cancels it.
 *
 * @example
 * ```ts
 * import { after } from "./_timers.ts";
 *
 * const cancel = after(40 * 86_400_000, () => console.log("forty days later"));
 * cancel();
 * ```
 */
export function after(
  ms: number,
  fn: () => void,
  options: AfterOptions = {},
): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (left: number) => {
    const step = Math.min(left, MAX_DELAY);
    timer = setTimeout(() => left > step ? arm(left - step) : fn(), step);
    if (options.keepAlive === false) Deno.unrefTimer(timer);
  };
  arm(Math.max(0, ms));
  return () => clearTimeout(timer);
}

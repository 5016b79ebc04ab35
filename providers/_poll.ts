/**
 * Polling until a deadline, on the one retry policy: a check called again
 * and again, with doubling delays and no jitter, until it has an answer or
 * the time is up.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import { retry } from "../src/_retry.ts";

/** Options of {@linkcode pollUntil}. */
export interface PollOptions {
  /** How long to poll, in ms; the deadline is checked after each check. */
  timeout: number;
  /** The first delay, in ms. @default 250 */
  minDelay?: number;
  /** The longest delay, in ms. @default 5000 */
  maxDelay?: number;
}

/**
 * Calls `check` until it returns something other than `undefined`, or the
 * deadline has passed after a check.
 *
 * @param check One look; `undefined` means "not yet". Its errors end the poll.
 * @param options The deadline and the delays.
 * @returns What `check` returned, or `undefined` when the time ran out.
 *
 * @example
 * ```ts
 * import { pollUntil } from "./_poll.ts";
 *
 * let looks = 0;
 * const ready = await pollUntil(
 *   () => Promise.resolve(++looks >= 3 ? "ready" : undefined),
 *   { timeout: 1_000, minDelay: 1 },
 * );
 * console.log(ready, looks); // "ready" 3
 * ```
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  options: PollOptions,
): Promise<T | undefined> {
  const deadline = AbortSignal.timeout(options.timeout);
  const notYet = new Error("not yet");
  try {
    return await retry(async () => {
      const answer = await check();
      if (answer === undefined) throw notYet;
      return answer;
    }, {
      maxAttempts: Infinity,
      minDelay: options.minDelay ?? 250,
      maxDelay: options.maxDelay ?? 5_000,
      jitter: 0,
      isRetriable: (error) => error === notYet && !deadline.aborted,
    });
  } catch (error) {
    if (error === notYet) return undefined;
    throw error;
  }
}

/**
 * The library's one retry policy: attempts, exponential backoff with jitter,
 * a test of which errors are worth another attempt, a delay the failure
 * itself asks for (HTTP's `Retry-After`), and an `AbortSignal` that ends
 * the waiting. Modelled on the standard library's `retry`
 * (`@std/async/retry`), with two differences: the last error is thrown as
 * it is (callers keep their error classes and messages), and the delay
 * before an attempt can be read from the error.
 *
 * @module
 */
import { sleep } from "./_timers.ts";

/** How {@linkcode retry} and {@linkcode backoff} space their attempts. */
export interface BackoffOptions {
  /** The delay before the second attempt, in ms. @default 1000 */
  minDelay?: number;
  /** The largest delay, in ms. @default 60000 */
  maxDelay?: number;
  /** What each delay is multiplied by for the next. @default 2 */
  multiplier?: number;
  /**
   * The share of each delay drawn at random, from 0 (none: the nominal
   * delay) to 1 (full jitter: anywhere from 0 to the nominal delay).
   * @default 1
   */
  jitter?: number;
}

/** Options of {@linkcode retry}. */
export interface RetryOptions extends BackoffOptions {
  /** Attempts at most, the first included; `Infinity` for no limit. @default 5 */
  maxAttempts?: number;
  /**
   * Whether a failure is worth another attempt; one that is not is thrown
   * at once.
   * @default () => true
   */
  isRetriable?: (error: unknown, attempt: number) => boolean;
  /**
   * The delay a failure asks for, in ms (e.g. from a `Retry-After` header,
   * see {@linkcode retryAfterMs}); it replaces the backoff's delay, capped
   * at `maxDelay`. `undefined` keeps the backoff's.
   */
  retryAfter?: (error: unknown) => number | undefined;
  /** Called before each wait, e.g. to log it. */
  onRetry?: (error: unknown, attempt: number, delay: number) => void;
  /**
   * Ends the retrying: checked before every attempt and during each wait;
   * the promise then rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

/**
 * The delay before attempt `attempt + 1`, after `attempt` failed ones:
 * `minDelay · multiplier^(attempt − 1)`, capped at `maxDelay`, with the
 * `jitter` share of it drawn at random.
 *
 * @param attempt How many attempts have failed, from 1.
 * @param options The backoff.
 * @returns The delay, in ms.
 *
 * @example
 * ```ts
 * import { backoff } from "./_retry.ts";
 *
 * console.log(backoff(3, { minDelay: 100, jitter: 0 })); // 400
 * ```
 */
export function backoff(attempt: number, options: BackoffOptions = {}): number {
  const {
    minDelay = 1_000,
    maxDelay = 60_000,
    multiplier = 2,
    jitter = 1,
  } = options;
  const nominal = Math.min(
    maxDelay,
    minDelay * multiplier ** Math.max(0, attempt - 1),
  );
  const share = Math.min(1, Math.max(0, jitter));
  return nominal * (1 - share) + Math.random() * nominal * share;
}

/**
 * Calls `fn` until it succeeds, waiting between attempts as
 * {@linkcode backoff} says.
 *
 * @param fn The operation; it receives the attempt's number, from 1.
 * @param options Attempts, backoff, which errors to retry, and a signal.
 * @returns What `fn` returned, on its first success.
 * @throws The last failure, as it is, when it is not retriable or the
 * attempts are spent; the signal's reason when it aborts.
 *
 * @example
 * ```ts
 * import { retry } from "./_retry.ts";
 *
 * let calls = 0;
 * const value = await retry(() => {
 *   if (++calls < 3) throw new Error("not yet");
 *   return Promise.resolve(calls);
 * }, { minDelay: 1 });
 * console.log(value); // 3
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { maxAttempts = 5, signal } = options;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (attempt >= maxAttempts) throw error;
      if (options.isRetriable && !options.isRetriable(error, attempt)) {
        throw error;
      }
      const asked = options.retryAfter?.(error);
      const delay = asked === undefined || !Number.isFinite(asked)
        ? backoff(attempt, options)
        : Math.min(Math.max(0, asked), options.maxDelay ?? 60_000);
      options.onRetry?.(error, attempt, delay);
      await sleep(delay, signal);
    }
  }
}

/**
 * Reads an HTTP `Retry-After` value: seconds, or an HTTP date.
 *
 * @param value The header's value, or `null` when there is none.
 * @param now The time to count a date from, in ms since the epoch.
 * @returns The delay it asks for, in ms, or `undefined` when there is none
 * or it cannot be read.
 *
 * @example
 * ```ts
 * import { retryAfterMs } from "./_retry.ts";
 *
 * console.log(retryAfterMs("2")); // 2000
 * console.log(retryAfterMs("Wed, 21 Oct 2015 07:28:10 GMT", Date.parse("2015-10-21T07:28:00Z"))); // 10000
 * ```
 */
export function retryAfterMs(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined || value.trim() === "") {
    return undefined;
  }
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Creates that are never blindly repeated. A request that launches a machine
 * and loses its answer may have launched it all the same; sending it again
 * would launch a second one that bills until a sweep. {@linkcode createOnce}
 * sends the create as a `once` request of the shared HTTP client and, when
 * its failure is ambiguous, looks up by the name or label the create set
 * whether it took effect before trying again.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import { ProvisioningError } from "../src/errors.ts";
import { retry } from "../src/_retry.ts";
import { sleep } from "../src/_timers.ts";
import { AmbiguousRequestError } from "./_http.ts";

/** Options of {@linkcode createOnce}. */
export interface CreateOnceOptions<T> {
  /**
   * Sends the create, with `once: true` on the request so that an ambiguous
   * failure rejects with an {@linkcode AmbiguousRequestError} instead of
   * being retried by the HTTP client.
   */
  create: () => Promise<T>;
  /**
   * Finds what an earlier attempt created, by the name or label that is
   * unique to this create (e.g. the instance's hostname), or `undefined`
   * when nothing was created.
   */
  lookup: () => Promise<T | undefined>;
  /** What is created, for messages, e.g. `"Verda instance sky-abc-0"`. */
  what: string;
  /** Attempts of the create, the first included. @default 3 */
  attempts?: number;
  /** Delay before looking up and before each new attempt, in ms. @default 1000 */
  delayMs?: number;
}

/**
 * Sends a create once, and again only after a lookup shows that the earlier
 * attempt did not take effect.
 *
 * A clear refusal (a 4xx, no capacity, bad credentials) rejects at once with
 * the create's own error; only an {@linkcode AmbiguousRequestError} leads to
 * a lookup.
 *
 * @param options The create, the lookup by name or label, and the attempts.
 * @returns What the create returned, or what the lookup found.
 * @throws {ProvisioningError} When every attempt was ambiguous and the lookups
 * found nothing, or a lookup itself failed: the message says that something
 * may have been created and should be swept.
 *
 * @example
 * ```ts
 * import { createOnce } from "./_create.ts";
 * import { AmbiguousRequestError } from "./_http.ts";
 *
 * const created = new Set<string>();
 * let dropped = false;
 * const id = await createOnce({
 *   what: "instance sky-demo-0",
 *   delayMs: 0,
 *   create: () => {
 *     created.add("sky-demo-0");
 *     if (!dropped) {
 *       dropped = true; // the answer is lost after the create took effect
 *       return Promise.reject(
 *         new AmbiguousRequestError("Cloud", "POST", "/instances", "reset"),
 *       );
 *     }
 *     return Promise.resolve("sky-demo-0");
 *   },
 *   lookup: () =>
 *     Promise.resolve(created.has("sky-demo-0") ? "sky-demo-0" : undefined),
 * });
 * console.log(id, created.size); // "sky-demo-0" 1
 * ```
 */
export async function createOnce<T>(options: CreateOnceOptions<T>): Promise<T> {
  const attempts = options.attempts ?? 3;
  const delayMs = options.delayMs ?? 1_000;
  const attempt = async (): Promise<T> => {
    let ambiguous: AmbiguousRequestError;
    try {
      return await options.create();
    } catch (error) {
      if (!(error instanceof AmbiguousRequestError)) throw error;
      ambiguous = error;
    }
    await sleep(delayMs);
    let found: T | undefined;
    try {
      found = await options.lookup();
    } catch (error) {
      throw new ProvisioningError(
        `Could not tell whether the ${options.what} was created: ${ambiguous.message}; ` +
          `then looking it up failed: ${(error as Error).message}. ` +
          `It may exist and bill until the pool's teardown or a cleanup sweeps it.`,
        { cause: error },
      );
    }
    if (found !== undefined) return found;
    throw ambiguous;
  };
  try {
    // The lookup has waited already: the next create goes out at once.
    return await retry(attempt, {
      maxAttempts: attempts,
      minDelay: 0,
      isRetriable: (error) => error instanceof AmbiguousRequestError,
    });
  } catch (error) {
    if (!(error instanceof AmbiguousRequestError)) throw error;
    throw new ProvisioningError(
      `Could not create the ${options.what} after ${attempts} attempt(s): ` +
        `${error.message}. A lookup found none after each attempt; ` +
        `the pool's teardown or a cleanup sweeps any that appears later.`,
      { cause: error },
    );
  }
}

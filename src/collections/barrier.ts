/**
 * `sky.barrier(name, parties)`: a meeting point where `parties` callers wait
 * for each other, round after round.
 *
 * @module
 */
import type { CollectionReplies } from "./backend.ts";
import { type Caller, checkName } from "./_context.ts";
import { checkMs, timeoutError } from "./_context.ts";
import { send } from "./_handle.ts";

/** Options of {@linkcode Barrier.wait}. */
export interface BarrierWaitOptions {
  /**
   * How long to wait for the others, in milliseconds; past it `wait`
   * withdraws and rejects with a `DOMException` named `"TimeoutError"`.
   * @default no limit
   */
  timeout?: number;
  /** Stops waiting (withdrawing): `wait` rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * A barrier for `parties` callers — tasks on any node, or the client —
 * made by {@linkcode barrier}. Each round lets everyone through once
 * `parties` of them wait; then the next round begins.
 *
 * A caller that stops waiting before its round is complete (a timeout, its
 * signal, its task cancelled, its node lost) withdraws: so a task retried
 * after its node was lost arrives again without being counted twice.
 *
 * @example
 * ```ts
 * import { type Barrier, barrier } from "./barrier.ts";
 *
 * const start: Barrier = barrier("start-class-example", 1);
 * console.log(await start.wait()); // 0: one party, through at once
 * ```
 */
export class Barrier {
  /** How many callers each round waits for. */
  readonly parties: number;

  /** The collection's name. */
  readonly name: string;
  #caller: Caller | undefined;

  /** @internal Made by {@linkcode barrier} or `pool.barrier`. */
  constructor(name: string, parties: number, caller?: Caller) {
    this.name = checkName("barrier", name);
    this.#caller = caller;
    if (!Number.isSafeInteger(parties) || parties < 1) {
      throw new RangeError(
        `Cannot open barrier '${name}': 'parties' must be a positive integer, got ${parties}`,
      );
    }
    this.parties = parties;
  }

  /**
   * Waits until `parties` callers wait at the barrier (this one included).
   *
   * @param options How long to wait, and a signal to stop waiting.
   * @returns The caller's place in the round: 0 for the first to arrive,
   *   `parties - 1` for the last (handy to pick one caller for a job).
   * @throws {DOMException} Named `"TimeoutError"`, past `timeout`.
   * @throws {RangeError} When callers already waiting wait for another
   *   number of parties.
   */
  async wait(options: BarrierWaitOptions = {}): Promise<number> {
    const timeoutMs = checkMs(
      `wait at barrier '${this.name}'`,
      "timeout",
      options.timeout,
    );
    options.signal?.throwIfAborted();
    const reply = await send(this.#caller, {
      kind: "barrier",
      name: this.name,
      op: "wait",
      parties: this.parties,
      timeoutMs,
    }, options.signal) as CollectionReplies["barrier.wait"];
    if ("index" in reply) return reply.index;
    throw timeoutError(
      `Barrier '${this.name}' did not gather its ${this.parties} parties within ${timeoutMs} ms`,
    );
  }
}

/**
 * A barrier shared by the client and the tasks of the pool: in a task, the
 * task's pool's; on the client, the open pool's (or use
 * `pool.barrier(name, parties)`); with no pool open, the process's own.
 *
 * @param name The barrier's name.
 * @param parties How many callers each round waits for.
 * @returns Its handle.
 * @throws {TypeError} When the name is not a non-empty string.
 * @throws {RangeError} When `parties` is not a positive integer.
 *
 * @example
 * ```ts
 * import { barrier } from "./barrier.ts";
 *
 * const epoch = barrier("epoch-example", 2);
 * const places = await Promise.all([epoch.wait(), epoch.wait({ timeout: 10_000 })]);
 * console.log(places); // [ 0, 1 ]
 * ```
 */
export function barrier(name: string, parties: number): Barrier {
  return new Barrier(name, parties);
}

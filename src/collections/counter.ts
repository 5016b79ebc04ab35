/**
 * `sky.counter(name)`: an integer shared by the client and the tasks of a
 * pool, changed atomically.
 *
 * @module
 */
import { type Caller, checkName } from "./_context.ts";
import { send } from "./_handle.ts";

/**
 * An integer shared by the client and the tasks of a pool, made by
 * {@linkcode counter}; it starts at 0 and holds integers within
 * `±Number.MAX_SAFE_INTEGER`.
 *
 * @example
 * ```ts
 * import { type Counter, counter } from "./counter.ts";
 *
 * const left: Counter = counter("left-class-example");
 * console.log(await left.add(-3)); // -3
 * ```
 */
export class Counter {
  /** The collection's name. */
  readonly name: string;
  #caller: Caller | undefined;

  /** @internal Made by {@linkcode counter} or `pool.counter`. */
  constructor(name: string, caller?: Caller) {
    this.name = checkName("counter", name);
    this.#caller = caller;
  }

  /**
   * Adds `n` (subtracts, when negative), atomically.
   *
   * @param n An integer.
   * @default 1
   * @returns The new value.
   * @throws {RangeError} When `n` is not a safe integer, or the value would
   *   leave the safe integers.
   */
  async add(n = 1): Promise<number> {
    if (!Number.isSafeInteger(n)) {
      throw new RangeError(
        `Cannot add to counter '${this.name}': 'n' must be a safe integer, got ${n}`,
      );
    }
    return await send(this.#caller, {
      kind: "counter",
      name: this.name,
      op: "add",
      n,
    }) as number;
  }

  /** The current value. */
  async value(): Promise<number> {
    return await send(this.#caller, {
      kind: "counter",
      name: this.name,
      op: "value",
    }) as number;
  }

  /** Sets the value back to 0. */
  async reset(): Promise<void> {
    await send(this.#caller, { kind: "counter", name: this.name, op: "reset" });
  }
}

/**
 * A counter shared by the client and the tasks of the pool: in a task, the
 * task's pool's; on the client, the open pool's (or use
 * `pool.counter(name)`); with no pool open, the process's own (for
 * `fn.local()`).
 *
 * @param name The counter's name.
 * @returns Its handle.
 * @throws {TypeError} When the name is not a non-empty string.
 *
 * @example
 * ```ts
 * import { counter } from "./counter.ts";
 *
 * const hits = counter("hits-example");
 * console.log(await hits.add(1)); // 1
 * console.log(await hits.add(2)); // 3
 * await hits.reset();
 * console.log(await hits.value()); // 0
 * ```
 */
export function counter(name: string): Counter {
  return new Counter(name);
}

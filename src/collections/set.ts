/**
 * `sky.set<V>(name)`: a set of values, shared by the client and the tasks
 * of a pool.
 *
 * @module
 */
import type { Page } from "./backend.ts";
import { type Caller, checkName } from "./_context.ts";
import { decodeValue, encodeValue } from "./_context.ts";
import { send } from "./_handle.ts";

/**
 * A set of values of type `V`, shared by the client and the tasks of a pool,
 * made by {@linkcode set}. Membership is decided by a value's encoded bytes:
 * `1` and `1n` are two members, and two objects with the same properties in
 * the same order are one.
 *
 * @typeParam V The type of the members.
 *
 * @example
 * ```ts
 * import { set, type SharedSet } from "./set.ts";
 *
 * const tags: SharedSet<string> = set<string>("tags-class-example");
 * await tags.add("gpu");
 * console.log(await tags.has("gpu")); // true
 * ```
 */
export class SharedSet<V = unknown> {
  /** The collection's name. */
  readonly name: string;
  #caller: Caller | undefined;

  /** @internal Made by {@linkcode set} or `pool.set`. */
  constructor(name: string, caller?: Caller) {
    this.name = checkName("set", name);
    this.#caller = caller;
  }

  /**
   * Adds a member.
   *
   * @returns Whether it was new.
   * @throws {SerializationError} When the value cannot be sent.
   */
  async add(value: V): Promise<boolean> {
    return await send(this.#caller, {
      kind: "set",
      name: this.name,
      op: "add",
      value: encodeValue(value, "value"),
    }) as boolean;
  }

  /** Removes a member; resolves to whether it was there. */
  async delete(value: V): Promise<boolean> {
    return await send(this.#caller, {
      kind: "set",
      name: this.name,
      op: "delete",
      value: encodeValue(value, "value"),
    }) as boolean;
  }

  /** Whether `value` is a member. */
  async has(value: V): Promise<boolean> {
    return await send(this.#caller, {
      kind: "set",
      name: this.name,
      op: "has",
      value: encodeValue(value, "value"),
    }) as boolean;
  }

  /** How many members the set has. */
  async size(): Promise<number> {
    return await send(this.#caller, {
      kind: "set",
      name: this.name,
      op: "size",
    }) as number;
  }

  /**
   * The members, page by page: one present for the whole iteration is
   * listed once; one added or removed meanwhile may or may not be.
   */
  async *values(): AsyncGenerator<V> {
    let cursor: string | undefined;
    do {
      const page = await send(this.#caller, {
        kind: "set",
        name: this.name,
        op: "values",
        cursor,
      }) as Page<Uint8Array>;
      for (const bytes of page.items) yield decodeValue<V>(bytes);
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /** The members, as {@linkcode SharedSet.values}. */
  [Symbol.asyncIterator](): AsyncGenerator<V> {
    return this.values();
  }
}

/**
 * A set shared by the client and the tasks of the pool: in a task, the
 * task's pool's; on the client, the open pool's (or use `pool.set(name)`);
 * with no pool open, the process's own (for `fn.local()`).
 *
 * @param name The set's name.
 * @returns Its handle.
 * @throws {TypeError} When the name is not a non-empty string.
 *
 * @example
 * ```ts
 * import { set } from "./set.ts";
 *
 * const seen = set<number>("seen-example");
 * console.log(await seen.add(3)); // true
 * console.log(await seen.add(3)); // false
 * console.log(await seen.size()); // 1
 * ```
 */
export function set<V = unknown>(name: string): SharedSet<V> {
  return new SharedSet<V>(name);
}

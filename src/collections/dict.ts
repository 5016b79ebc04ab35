/**
 * `sky.dict<V>(name)`: a map from string keys to values, shared by the
 * client and the tasks of a pool.
 *
 * @module
 */
import type { CollectionReplies, Page } from "./backend.ts";
import { type Caller, checkName } from "./_context.ts";
import { decodeValue, encodeValue } from "./_context.ts";
import { send } from "./_handle.ts";
import { backoff } from "../_retry.ts";
import { sleep } from "../_timers.ts";

function checkKey(action: string, key: unknown): string {
  if (typeof key !== "string") {
    throw new TypeError(
      `Cannot ${action}: a dict's keys are strings, got ${typeof key}`,
    );
  }
  return key;
}

/**
 * A map from string keys to values of type `V`, shared by the client and the
 * tasks of a pool, made by {@linkcode dict}. Every method is asynchronous;
 * values travel with the pool's codec (so a value that cannot be sent is
 * refused with its `SerializationError`), and a value read is a copy.
 *
 * @typeParam V The type of the values.
 *
 * @example
 * ```ts
 * import { dict, type Dict } from "./dict.ts";
 *
 * const ages: Dict<number> = dict<number>("ages-class-example");
 * await ages.set("ada", 36);
 * console.log(await ages.has("ada")); // true
 * ```
 */
export class Dict<V = unknown> {
  /** The collection's name. */
  readonly name: string;
  #caller: Caller | undefined;

  /** @internal Made by {@linkcode dict} or `pool.dict`. */
  constructor(name: string, caller?: Caller) {
    this.name = checkName("dict", name);
    this.#caller = caller;
  }

  /** The value under `key`, or `undefined` when there is none. */
  async get(key: string): Promise<V | undefined> {
    checkKey(`get key of dict '${this.name}'`, key);
    const bytes = await send(this.#caller, {
      kind: "dict",
      name: this.name,
      op: "get",
      key,
    }) as CollectionReplies["dict.get"];
    return bytes === undefined ? undefined : decodeValue<V>(bytes);
  }

  /**
   * Sets the value under `key`.
   *
   * @throws {SerializationError} When the value cannot be sent.
   */
  async set(key: string, value: V): Promise<void> {
    checkKey(`set key of dict '${this.name}'`, key);
    await send(this.#caller, {
      kind: "dict",
      name: this.name,
      op: "set",
      key,
      value: encodeValue(value, "value"),
    });
  }

  /** Whether there is a value under `key`. */
  async has(key: string): Promise<boolean> {
    checkKey(`look up a key of dict '${this.name}'`, key);
    return await send(this.#caller, {
      kind: "dict",
      name: this.name,
      op: "has",
      key,
    }) as boolean;
  }

  /** Deletes the value under `key`; resolves to whether there was one. */
  async delete(key: string): Promise<boolean> {
    checkKey(`delete a key of dict '${this.name}'`, key);
    return await send(this.#caller, {
      kind: "dict",
      name: this.name,
      op: "delete",
      key,
    }) as boolean;
  }

  /**
   * Replaces the value under `key` with what `fn` makes of it, atomically:
   * no other write of that key comes between the read and the write.
   *
   * `fn` runs where `update` is called, and runs again when another writer
   * changed the key in the meantime (optimistic concurrency): it should only
   * compute the new value. What it returns is stored, `undefined` included.
   *
   * @param key The key.
   * @param fn Gets the current value (`undefined` when there is none) and
   *   returns the new one.
   * @returns The value stored.
   * @throws {SerializationError} When the new value cannot be sent.
   *
   * @example
   * ```ts
   * import { dict } from "./dict.ts";
   *
   * const seen = dict<string[]>("seen-update-example");
   * await seen.update("ids", (ids = []) => [...ids, "a"]);
   * console.log(await seen.update("ids", (ids = []) => [...ids, "b"])); // [ "a", "b" ]
   * ```
   */
  async update(
    key: string,
    fn: (current: V | undefined) => V | Promise<V>,
  ): Promise<V> {
    checkKey(`update a key of dict '${this.name}'`, key);
    for (let attempt = 1;; attempt++) {
      const read = await send(this.#caller, {
        kind: "dict",
        name: this.name,
        op: "getVersioned",
        key,
      }) as CollectionReplies["dict.getVersioned"];
      const current = read.value === undefined
        ? undefined
        : decodeValue<V>(read.value);
      const next = await fn(current);
      const written = await send(this.#caller, {
        kind: "dict",
        name: this.name,
        op: "setIfVersion",
        key,
        version: read.version,
        value: encodeValue(next, "value"),
      });
      if (written) return next;
      // Under contention, let the other writers through.
      if (attempt > 2) {
        await sleep(backoff(attempt - 2, { minDelay: 1, maxDelay: 50 }));
      }
    }
  }

  /** How many keys the dict holds. */
  async size(): Promise<number> {
    return await send(this.#caller, {
      kind: "dict",
      name: this.name,
      op: "size",
    }) as number;
  }

  /**
   * The keys, page by page: a key present for the whole iteration is listed
   * once; one added or deleted meanwhile may or may not be.
   */
  async *keys(): AsyncGenerator<string> {
    let cursor: string | undefined;
    do {
      const page = await send(this.#caller, {
        kind: "dict",
        name: this.name,
        op: "keys",
        cursor,
      }) as Page<string>;
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /** The entries `[key, value]`, page by page, as {@linkcode Dict.keys} lists keys. */
  async *entries(): AsyncGenerator<[string, V]> {
    let cursor: string | undefined;
    do {
      const page = await send(this.#caller, {
        kind: "dict",
        name: this.name,
        op: "entries",
        cursor,
      }) as Page<[string, Uint8Array]>;
      for (const [key, value] of page.items) {
        yield [key, decodeValue<V>(value)];
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /** The values, page by page, as {@linkcode Dict.keys} lists keys. */
  async *values(): AsyncGenerator<V> {
    for await (const [, value] of this.entries()) yield value;
  }

  /** The entries, as {@linkcode Dict.entries}. */
  [Symbol.asyncIterator](): AsyncGenerator<[string, V]> {
    return this.entries();
  }
}

/**
 * A dict shared by the client and the tasks of the pool: in a task, the
 * task's pool's; on the client, the open pool's (or use `pool.dict(name)`);
 * with no pool open, the process's own (for `fn.local()`).
 *
 * @param name The dict's name (dicts and other kinds have names of their own).
 * @returns Its handle; nothing is created until a value is set.
 * @throws {TypeError} When the name is not a non-empty string.
 *
 * @example
 * ```ts
 * import { dict } from "./dict.ts";
 *
 * const slots = dict<number>("slots-example");
 * await slots.set("gpu0", 1);
 * console.log(await slots.get("gpu0")); // 1
 * console.log(await slots.update("gpu0", (n = 0) => n + 1)); // 2
 * for await (const [key, value] of slots.entries()) console.log(key, value); // gpu0 2
 * ```
 */
export function dict<V = unknown>(name: string): Dict<V> {
  return new Dict<V>(name);
}

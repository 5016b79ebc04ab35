/**
 * `sky.queue<V>(name)`: a first-in first-out queue shared by the client and
 * the tasks of a pool, with a blocking `get`.
 *
 * @module
 */
import type { QueueTake } from "./backend.ts";
import { type Caller, checkName } from "./_context.ts";
import { checkMs, decodeValue, encodeValue, timeoutError } from "./_context.ts";
import { send } from "./_handle.ts";
import { QueueClosedError } from "../errors.ts";

/** Options of {@linkcode Queue.get}. */
export interface QueueGetOptions {
  /**
   * How long to wait for a value, in milliseconds; past it `get` rejects
   * with a `DOMException` named `"TimeoutError"`.
   * @default no limit
   */
  timeout?: number;
  /** Stops waiting: `get` rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * A first-in first-out queue of values of type `V`, shared by the client and
 * the tasks of a pool, made by {@linkcode queue}. Once closed, it takes no
 * more values and its getters drain what is left; iterating it with
 * `for await` ends when it is closed and empty.
 *
 * @typeParam V The type of the values.
 *
 * @example
 * ```ts
 * import { queue, type Queue } from "./queue.ts";
 *
 * const jobs: Queue<string> = queue<string>("jobs-class-example");
 * await jobs.put("a");
 * console.log(await jobs.get({ timeout: 1_000 })); // "a"
 * ```
 */
export class Queue<V = unknown> implements AsyncIterable<V> {
  /** The collection's name. */
  readonly name: string;
  #caller: Caller | undefined;

  /** @internal Made by {@linkcode queue} or `pool.queue`. */
  constructor(name: string, caller?: Caller) {
    this.name = checkName("queue", name);
    this.#caller = caller;
  }

  /**
   * Puts a value at the end of the queue; a waiting getter gets it at once.
   *
   * @throws {SerializationError} When the value cannot be sent.
   * @throws {QueueClosedError} When the queue is closed.
   */
  async put(value: V): Promise<void> {
    const taken = await send(this.#caller, {
      kind: "queue",
      name: this.name,
      op: "put",
      value: encodeValue(value, "value"),
    });
    if (taken === false) {
      throw new QueueClosedError(
        this.name,
        `Cannot put a value in queue '${this.name}': it is closed`,
      );
    }
  }

  /**
   * Takes the first value, waiting for one when the queue is empty.
   *
   * @param options How long to wait, and a signal to stop waiting.
   * @returns The value.
   * @throws {QueueClosedError} When the queue is closed and empty.
   * @throws {DOMException} Named `"TimeoutError"`, past `timeout`.
   */
  async get(options: QueueGetOptions = {}): Promise<V> {
    const timeoutMs = checkMs(
      `get from queue '${this.name}'`,
      "timeout",
      options.timeout,
    );
    options.signal?.throwIfAborted();
    const take = await send(this.#caller, {
      kind: "queue",
      name: this.name,
      op: "get",
      timeoutMs,
    }, options.signal) as QueueTake;
    if ("value" in take) return decodeValue<V>(take.value);
    if (take.end === "closed") throw new QueueClosedError(this.name);
    throw timeoutError(
      `No value came in queue '${this.name}' within ${timeoutMs} ms`,
    );
  }

  /**
   * Takes the first value without waiting.
   *
   * @returns The value, or `undefined` when the queue is empty (a queue
   *   whose values may be `undefined` tells the two apart with
   *   `get({ timeout: 0 })`).
   */
  async tryGet(): Promise<V | undefined> {
    const take = await send(this.#caller, {
      kind: "queue",
      name: this.name,
      op: "tryGet",
    }) as QueueTake;
    return "value" in take ? decodeValue<V>(take.value) : undefined;
  }

  /** How many values wait in the queue. */
  async size(): Promise<number> {
    return await send(this.#caller, {
      kind: "queue",
      name: this.name,
      op: "size",
    }) as number;
  }

  /**
   * Closes the queue: `put` is refused from now on, getters take what is
   * left, then find it closed. Closing a closed queue does nothing.
   */
  async close(): Promise<void> {
    await send(this.#caller, { kind: "queue", name: this.name, op: "close" });
  }

  /** Takes values as they come, until the queue is closed and empty. */
  async *[Symbol.asyncIterator](): AsyncGenerator<V> {
    while (true) {
      let value: V;
      try {
        value = await this.get();
      } catch (error) {
        if (error instanceof QueueClosedError) return;
        throw error;
      }
      yield value;
    }
  }
}

/**
 * A queue shared by the client and the tasks of the pool: in a task, the
 * task's pool's; on the client, the open pool's (or use
 * `pool.queue(name)`); with no pool open, the process's own (for
 * `fn.local()`).
 *
 * @param name The queue's name.
 * @returns Its handle.
 * @throws {TypeError} When the name is not a non-empty string.
 *
 * @example
 * ```ts
 * import { queue } from "./queue.ts";
 *
 * const work = queue<number>("work-example");
 * await work.put(1);
 * await work.put(2);
 * await work.close();
 * for await (const item of work) console.log(item); // 1, then 2
 * ```
 */
export function queue<V = unknown>(name: string): Queue<V> {
  return new Queue<V>(name);
}

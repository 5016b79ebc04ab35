/**
 * The embedded collections backend: the pool's client holds every collection
 * in its own memory and serves the nodes over the connections the pool
 * already has (nothing to install, no port opened between nodes, so it works
 * on every provider). The collections last as long as the pool; nothing is
 * written to disk.
 *
 * It follows the decisions of `backend.ts`; the blocking calls (`queue.get`,
 * `barrier.wait`, `lock.acquire`) wait in FIFO order.
 *
 * @module
 */
import { PoolClosedError } from "../errors.ts";
import type {
  CollectionBackend,
  CollectionCall,
  CollectionsOption,
  Page,
  QueueTake,
} from "./backend.ts";

/** How many items a page of `keys`, `entries` or `values` holds at most. */
export const PAGE_ITEMS = 1_000;
/** How many bytes of values a page holds, past which it ends early (at least one item). */
export const PAGE_BYTES = 1024 * 1024;
/** Listings in progress kept at most; past this the oldest is dropped. */
const MAX_CURSORS = 1_024;

/** A blocked call, until it is answered or ends. */
interface Waiter<T> {
  holder: string;
  resolve(value: T): void;
  reject(error: unknown): void;
  /** Removes it from where it waits and stops its timer and signal. */
  end(): void;
}

interface DictEntry {
  value: Uint8Array;
  version: number;
}

interface Dict {
  entries: Map<string, DictEntry>;
}

interface Queue {
  items: Uint8Array[];
  /** Index of the first item of `items` still in the queue. */
  head: number;
  closed: boolean;
  getters: Waiter<QueueTake>[];
}

interface Barrier {
  parties: number;
  waiters: Waiter<{ index: number } | { end: "timeout" }>[];
}

interface Lock {
  owner?: { token: string; holder: string; lease?: () => void };
  waiters: (Waiter<{ token: string } | { end: "timeout" }> & {
    leaseMs?: number;
  })[];
}

interface Cursor {
  holder: string;
  items: string[];
  at: number;
}

/**
 * Keeps the bytes of a value in a buffer of their own: a decoded value is a
 * view into its whole message, which must not stay alive with it.
 */
function own(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : bytes.slice();
}

/** A set member's key: its bytes as a binary string. */
function memberKey(bytes: Uint8Array): string {
  let key = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    key += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return key;
}

/**
 * The embedded backend: collections in the client's memory.
 *
 * @example
 * ```ts
 * import { EmbeddedBackend } from "./embedded.ts";
 *
 * const backend = new EmbeddedBackend();
 * await backend.call({ kind: "counter", name: "hits", op: "add", n: 2 }, "client");
 * console.log(await backend.call({ kind: "counter", name: "hits", op: "value" }, "client")); // 2
 * await backend.close();
 * ```
 */
export class EmbeddedBackend implements CollectionBackend {
  #dicts = new Map<string, Dict>();
  /**
   * The last version given to a dict's write; the next write takes the next
   * one. One clock for every dict, so that a dict emptied (and dropped) and
   * written again never gives a version twice.
   */
  #clock = 0;
  #sets = new Map<string, Map<string, Uint8Array>>();
  #counters = new Map<string, number>();
  #queues = new Map<string, Queue>();
  #barriers = new Map<string, Barrier>();
  #locks = new Map<string, Lock>();
  #cursors = new Map<string, Cursor>();
  #waiters = new Set<Waiter<never>>();
  #closed = false;

  /** @inheritdoc */
  call(
    call: CollectionCall,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(
        new PoolClosedError("The pool's collections are closed"),
      );
    }
    try {
      switch (call.kind) {
        case "dict":
          return Promise.resolve(this.#dict(call, holder));
        case "set":
          return Promise.resolve(this.#set(call, holder));
        case "counter":
          return Promise.resolve(this.#counter(call));
        case "queue":
          return this.#queue(call, holder, signal);
        case "barrier":
          return this.#barrier(call, holder, signal);
        case "lock":
          return this.#lock(call, holder, signal);
        default:
          throw new TypeError(
            `Cannot call a collection of kind '${
              (call as { kind: unknown }).kind
            }'`,
          );
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** @inheritdoc */
  forget(holder: string): Promise<void> {
    const gone = new Error(`The caller '${holder}' is gone`);
    for (const waiter of [...this.#waiters]) {
      if (waiter.holder === holder) {
        waiter.end();
        waiter.reject(gone);
      }
    }
    for (const [name, lock] of this.#locks) {
      if (lock.owner?.holder === holder) this.#unlock(name, lock);
    }
    for (const [id, cursor] of this.#cursors) {
      if (cursor.holder === holder) this.#cursors.delete(id);
    }
    return Promise.resolve();
  }

  /** @inheritdoc */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const closed = new PoolClosedError("The pool's collections are closed");
    for (const waiter of [...this.#waiters]) {
      waiter.end();
      waiter.reject(closed);
    }
    for (const lock of this.#locks.values()) lock.owner?.lease?.();
    this.#dicts.clear();
    this.#sets.clear();
    this.#counters.clear();
    this.#queues.clear();
    this.#barriers.clear();
    this.#locks.clear();
    this.#cursors.clear();
    return Promise.resolve();
  }

  // ---- dict

  #dict(call: Extract<CollectionCall, { kind: "dict" }>, holder: string) {
    let dict = this.#dicts.get(call.name);
    if (!dict) {
      if (call.op === "set" || call.op === "setIfVersion") {
        this.#dicts.set(call.name, dict = { entries: new Map() });
      } else dict = { entries: new Map() };
    }
    const entries = dict.entries;
    switch (call.op) {
      case "get":
        return entries.get(call.key)?.value;
      case "has":
        return entries.has(call.key);
      case "delete":
        return this.#dictDelete(call.name, dict, call.key);
      case "set":
        entries.set(call.key, {
          value: own(call.value),
          version: ++this.#clock,
        });
        return undefined;
      case "getVersioned": {
        const entry = entries.get(call.key);
        return entry
          ? { value: entry.value, version: entry.version }
          : { version: 0 };
      }
      case "setIfVersion": {
        if ((entries.get(call.key)?.version ?? 0) !== call.version) {
          return false;
        }
        if (call.value === undefined) {
          this.#dictDelete(call.name, dict, call.key);
        } else {
          entries.set(call.key, {
            value: own(call.value),
            version: ++this.#clock,
          });
        }
        return true;
      }
      case "size":
        return entries.size;
      case "keys":
        return this.#page(
          holder,
          call.cursor,
          () => [...entries.keys()],
          (key) => entries.has(key) ? key : undefined,
        );
      case "entries":
        return this.#page(
          holder,
          call.cursor,
          () => [...entries.keys()],
          (key) => {
            const entry = entries.get(key);
            return entry
              ? [key, entry.value] as [string, Uint8Array]
              : undefined;
          },
        );
    }
  }

  #dictDelete(name: string, dict: Dict, key: string): boolean {
    const had = dict.entries.delete(key);
    if (dict.entries.size === 0) this.#dicts.delete(name);
    return had;
  }

  // ---- set

  #set(call: Extract<CollectionCall, { kind: "set" }>, holder: string) {
    const members = this.#sets.get(call.name) ?? new Map<string, Uint8Array>();
    switch (call.op) {
      case "add": {
        const key = memberKey(call.value);
        if (members.has(key)) return false;
        members.set(key, own(call.value));
        this.#sets.set(call.name, members);
        return true;
      }
      case "delete": {
        const had = members.delete(memberKey(call.value));
        if (members.size === 0) this.#sets.delete(call.name);
        return had;
      }
      case "has":
        return members.has(memberKey(call.value));
      case "size":
        return members.size;
      case "values":
        return this.#page(
          holder,
          call.cursor,
          () => [...members.keys()],
          (key) => members.get(key),
        );
    }
  }

  /**
   * One page of a listing ({@linkcode PAGE_ITEMS} items or
   * {@linkcode PAGE_BYTES} bytes at most). The first page takes a snapshot of the keys
   * (kept, when more pages follow, under a cursor); each page looks their
   * items up as they are then, skipping those gone since.
   */
  #page<T>(
    holder: string,
    cursorId: string | undefined,
    snapshot: () => string[],
    lookup: (key: string) => T | undefined,
  ): Page<T> {
    let cursor: Cursor;
    if (cursorId === undefined) {
      cursor = { holder, items: snapshot(), at: 0 };
    } else {
      const found = this.#cursors.get(cursorId);
      if (!found) {
        throw new RangeError(
          `Cannot list the next page: the listing '${cursorId}' is over or unknown ` +
            `(a listing left unfinished is dropped once ${MAX_CURSORS} others are under way)`,
        );
      }
      cursor = found;
      this.#cursors.delete(cursorId);
    }
    const items: T[] = [];
    let bytes = 0;
    while (
      cursor.at < cursor.items.length && items.length < PAGE_ITEMS &&
      bytes < PAGE_BYTES
    ) {
      const item = lookup(cursor.items[cursor.at++]);
      if (item === undefined) continue;
      items.push(item);
      bytes += sizeOf(item);
    }
    if (cursor.at >= cursor.items.length) return { items };
    const next = crypto.randomUUID();
    this.#cursors.set(next, cursor);
    if (this.#cursors.size > MAX_CURSORS) {
      this.#cursors.delete(this.#cursors.keys().next().value!);
    }
    return { items, cursor: next };
  }

  // ---- counter

  #counter(call: Extract<CollectionCall, { kind: "counter" }>) {
    switch (call.op) {
      case "add": {
        const now = (this.#counters.get(call.name) ?? 0) + call.n;
        if (!Number.isSafeInteger(call.n) || !Number.isSafeInteger(now)) {
          throw new RangeError(
            `Cannot add ${call.n} to counter '${call.name}': a counter holds integers within ±${Number.MAX_SAFE_INTEGER}`,
          );
        }
        this.#counters.set(call.name, now);
        return now;
      }
      case "value":
        return this.#counters.get(call.name) ?? 0;
      case "reset":
        this.#counters.delete(call.name);
        return undefined;
    }
  }

  // ---- queue

  #queue(
    call: Extract<CollectionCall, { kind: "queue" }>,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    let queue = this.#queues.get(call.name);
    if (!queue) {
      queue = { items: [], head: 0, closed: false, getters: [] };
      this.#queues.set(call.name, queue);
    }
    switch (call.op) {
      case "put": {
        if (queue.closed) return Promise.resolve(false);
        const getter = queue.getters.shift();
        if (getter) {
          getter.end();
          getter.resolve({ value: own(call.value) });
        } else queue.items.push(own(call.value));
        return Promise.resolve(true);
      }
      case "tryGet":
        return Promise.resolve(
          this.#take(queue) ?? {
            end: queue.closed ? "closed" : "empty",
          },
        );
      case "size":
        return Promise.resolve(queue.items.length - queue.head);
      case "close": {
        queue.closed = true;
        for (const getter of queue.getters.splice(0)) {
          getter.end();
          getter.resolve({ end: "closed" });
        }
        return Promise.resolve(undefined);
      }
      case "get": {
        const taken = this.#take(queue);
        if (taken) return Promise.resolve(taken);
        if (queue.closed) return Promise.resolve({ end: "closed" });
        const getters = queue.getters;
        return this.#wait<QueueTake>(
          holder,
          signal,
          call.timeoutMs,
          { end: "timeout" },
          (waiter) => getters.push(waiter),
          (waiter) => remove(getters, waiter),
        );
      }
    }
  }

  #take(queue: Queue): QueueTake | undefined {
    if (queue.head >= queue.items.length) return undefined;
    const value = queue.items[queue.head];
    queue.items[queue.head++] = undefined as unknown as Uint8Array;
    if (queue.head >= queue.items.length) {
      queue.items = [];
      queue.head = 0;
    } else if (queue.head > 1024 && queue.head * 2 > queue.items.length) {
      queue.items = queue.items.slice(queue.head);
      queue.head = 0;
    }
    return { value };
  }

  // ---- barrier

  #barrier(
    call: Extract<CollectionCall, { kind: "barrier" }>,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const barrier = this.#barriers.get(call.name) ??
      { parties: call.parties, waiters: [] };
    if (barrier.waiters.length > 0 && barrier.parties !== call.parties) {
      return Promise.reject(
        new RangeError(
          `Cannot wait at barrier '${call.name}' for ${call.parties} parties: ` +
            `the ${barrier.waiters.length} waiting there wait for ${barrier.parties}`,
        ),
      );
    }
    barrier.parties = call.parties;
    this.#barriers.set(call.name, barrier);
    const waiters = barrier.waiters;
    const waiting = this.#wait<{ index: number } | { end: "timeout" }>(
      holder,
      signal,
      call.timeoutMs,
      { end: "timeout" },
      (waiter) => waiters.push(waiter),
      (waiter) => {
        remove(waiters, waiter);
        if (waiters.length === 0) this.#barriers.delete(call.name);
      },
    );
    if (waiters.length >= barrier.parties) {
      const round = waiters.splice(0);
      this.#barriers.delete(call.name);
      round.forEach((waiter, index) => {
        waiter.end();
        waiter.resolve({ index });
      });
    }
    return waiting;
  }

  // ---- lock

  #lock(
    call: Extract<CollectionCall, { kind: "lock" }>,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const lock = this.#locks.get(call.name) ?? { waiters: [] };
    if (call.op === "release") {
      if (lock.owner?.token !== call.token) return Promise.resolve(false);
      this.#unlock(call.name, lock);
      return Promise.resolve(true);
    }
    this.#locks.set(call.name, lock);
    if (!lock.owner) {
      signal?.throwIfAborted();
      return Promise.resolve({
        token: this.#grant(call.name, lock, holder, call.leaseMs),
      });
    }
    const waiters = lock.waiters;
    return this.#wait<{ token: string } | { end: "timeout" }>(
      holder,
      signal,
      call.timeoutMs,
      { end: "timeout" },
      (waiter) =>
        waiters.push(Object.assign(waiter, { leaseMs: call.leaseMs })),
      (waiter) => {
        remove(waiters, waiter);
        if (!lock.owner && waiters.length === 0) this.#locks.delete(call.name);
      },
    );
  }

  #grant(
    name: string,
    lock: Lock,
    holder: string,
    leaseMs: number | undefined,
  ): string {
    const token = crypto.randomUUID();
    const owner: Lock["owner"] = { token, holder };
    if (leaseMs !== undefined) {
      const timer = setTimeout(() => {
        if (lock.owner === owner) this.#unlock(name, lock);
      }, leaseMs);
      Deno.unrefTimer(timer);
      owner.lease = () => clearTimeout(timer);
    }
    lock.owner = owner;
    return token;
  }

  /** Releases a lock: to the first waiter, or for good. */
  #unlock(name: string, lock: Lock): void {
    lock.owner?.lease?.();
    lock.owner = undefined;
    const next = lock.waiters.shift();
    if (!next) {
      this.#locks.delete(name);
      return;
    }
    // Held before the waiter leaves, so that the lock is kept.
    const token = this.#grant(name, lock, next.holder, next.leaseMs);
    next.end();
    next.resolve({ token });
  }

  // ---- waiting

  /**
   * Makes a blocked call: it waits where `enter` puts it until it is
   * answered, times out (replying `timedOut`), its signal aborts or its
   * holder is forgotten.
   */
  #wait<T>(
    holder: string,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    timedOut: T,
    enter: (waiter: Waiter<T>) => void,
    leave: (waiter: Waiter<T>) => void,
  ): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        waiter.end();
        reject(signal!.reason);
      };
      const waiter: Waiter<T> = {
        holder,
        resolve,
        reject,
        end: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          this.#waiters.delete(waiter as Waiter<never>);
          leave(waiter);
        },
      };
      this.#waiters.add(waiter as Waiter<never>);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          waiter.end();
          resolve(timedOut);
        }, timeoutMs);
      }
      enter(waiter);
    });
  }
}

/** The bytes an item of a page weighs: its key and value. */
function sizeOf(item: unknown): number {
  if (typeof item === "string") return item.length;
  if (item instanceof Uint8Array) return item.length;
  const [key, value] = item as [string, Uint8Array];
  return key.length + value.length;
}

function remove<T>(array: T[], item: T): void {
  const at = array.indexOf(item);
  if (at >= 0) array.splice(at, 1);
}

/**
 * The embedded default of the pool's `collections` option: the client holds
 * the collections and the nodes reach them over the pool's connections.
 *
 * @returns The option.
 *
 * @example
 * ```ts
 * import { embedded } from "./embedded.ts";
 *
 * const backend = await embedded().open({ poolId: "sky-1" });
 * console.log(await backend.call({ kind: "set", name: "s", op: "add", value: new Uint8Array([1]) }, "client")); // true
 * await backend.close();
 * ```
 */
export function embedded(): CollectionsOption {
  return {
    kind: "embedded",
    open: () => Promise.resolve(new EmbeddedBackend()),
  };
}

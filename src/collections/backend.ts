/**
 * The contract every collections backend implements: the embedded one (the
 * client serves the collections over the pool's own connections,
 * `embedded.ts`) and Redis/Valkey.
 *
 * A backend sees only bytes: the user's values are encoded with the pool's
 * codec before they reach it ({@linkcode CollectionCall}), and what it
 * returns ({@linkcode CollectionReplies}) is decoded by the API in
 * `api.ts`. Everything a caller may expect — a timeout, a closed queue, an
 * empty queue — is a reply, not a rejection; a backend rejects only for
 * misuse (a `RangeError`/`TypeError` naming what to fix), when the call's
 * `signal` aborts (with `signal.reason`), when its holder is forgotten, and
 * when it is closed.
 *
 * ## Decisions every backend follows
 *
 * - **Names**: each kind has its own names (`dict("a")` and `queue("a")` are
 *   two collections). A name is any non-empty string of at most 256
 *   characters.
 * - **Dict keys** are strings (what JSON objects, Redis hash fields and
 *   `Map<string, …>` have in common). Values are encoded bytes.
 * - **Set membership** is decided by the encoded bytes of the value: `1` and
 *   `1n` are different members, two objects with the same properties in the
 *   same order are one member.
 * - **`update(key, fn)`** is an optimistic loop run where it is called:
 *   `getVersioned`, `fn` (which may be async and may run more than once, so it
 *   should have no side effects), then `setIfVersion`, retried when another
 *   writer came first. A key without a value has version 0; each write of a
 *   value gives the key a version it never had before (even after the key,
 *   or the whole dict, was deleted), so that `setIfVersion` never mistakes a
 *   newer value for the one that was read.
 * - **Counters** hold integers within `Number.MAX_SAFE_INTEGER`; `add(n)`
 *   takes an integer (negative to subtract) and replies the new value.
 * - **Pages**: `keys`, `entries` and `values` reply a page and a `cursor` to
 *   pass for the next one (absent on the last page). An item present for the
 *   whole iteration is listed exactly once; one added or deleted meanwhile may
 *   or may not be.
 * - **Queues** are FIFO. `get` waits (for `timeoutMs`, or until the signal
 *   aborts or the queue is closed). After `close`, `put` replies `false` and
 *   getters drain what is left, then reply `{ end: "closed" }`.
 * - **Barriers**: `wait` counts one arrival per call. A call that ends before
 *   the round is complete (timeout, its signal aborts, its holder is
 *   forgotten) withdraws its arrival, so a task retried after its node was
 *   lost arrives again without being counted twice. The round completes when
 *   `parties` arrivals are present; every waiter of the round then replies
 *   its arrival index (0 for the first), and the next round starts empty.
 *   All waiters of a round must agree on `parties` (else a `RangeError`).
 * - **Locks** are exclusive and not reentrant. `acquire` replies an opaque
 *   `token` to release with. Without `leaseMs` a lock is held until released
 *   or until its holder is forgotten (the worker also releases what a task
 *   holds when the task ends); with it, it is released `leaseMs` after it was
 *   granted whatever happens. `release` replies whether the token still held
 *   the lock. A backend that cannot see holders die may put its own safety
 *   expiry on a lock without a lease, provided it renews it while its holder
 *   lives.
 * - **Holders**: every call names who makes it — `"client"` (the pool's
 *   program) or a node's id (its session id, never reused). When a node is
 *   lost the pool calls `forget(id)`: its locks are released, its blocked
 *   calls end, its barrier arrivals are withdrawn.
 *
 * ## Where backends run
 *
 * The pool opens the backend named by its `collections` option on the
 * client ({@linkcode CollectionsOption.open}); `pool.dict(...)` and friends
 * call it with holder `"client"`. A task's calls go from its sandbox to its
 * worker process. There, when the option names a {@linkcode WorkerBackendSpec},
 * the worker opens its own backend from that module and calls it directly;
 * otherwise (the embedded default) the worker relays each call to the client
 * over the pool's connection, and the client calls its backend with the
 * node's id as holder.
 *
 * @module
 */

/** How many characters a collection's name may have. */
export const MAX_NAME_LENGTH = 256;

/** The kinds of collection. */
export type CollectionKind =
  | "dict"
  | "set"
  | "counter"
  | "queue"
  | "barrier"
  | "lock";

/**
 * One call on a named collection. User values are already encoded with the
 * pool's codec; dict keys are strings.
 */
export type CollectionCall =
  | {
    kind: "dict";
    name: string;
    op: "get" | "has" | "delete" | "getVersioned";
    key: string;
  }
  | { kind: "dict"; name: string; op: "set"; key: string; value: Uint8Array }
  | {
    kind: "dict";
    name: string;
    op: "setIfVersion";
    key: string;
    /** The version `getVersioned` replied; the write happens only if it is still current. */
    version: number;
    /** The new value; absent: delete the key. */
    value?: Uint8Array;
  }
  | {
    kind: "dict";
    name: string;
    op: "keys" | "entries";
    cursor?: string;
  }
  | { kind: "dict"; name: string; op: "size" }
  | {
    kind: "set";
    name: string;
    op: "add" | "delete" | "has";
    value: Uint8Array;
  }
  | { kind: "set"; name: string; op: "values"; cursor?: string }
  | { kind: "set"; name: string; op: "size" }
  | { kind: "counter"; name: string; op: "add"; n: number }
  | { kind: "counter"; name: string; op: "value" | "reset" }
  | { kind: "queue"; name: string; op: "put"; value: Uint8Array }
  | {
    kind: "queue";
    name: string;
    op: "get";
    /** How long to wait for an item; absent: until one comes or the queue is closed. */
    timeoutMs?: number;
  }
  | { kind: "queue"; name: string; op: "tryGet" | "size" | "close" }
  | {
    kind: "barrier";
    name: string;
    op: "wait";
    parties: number;
    timeoutMs?: number;
  }
  | {
    kind: "lock";
    name: string;
    op: "acquire";
    /** Released this long after it is granted; absent: no lease. */
    leaseMs?: number;
    /** How long to wait for the lock; absent: as long as it takes. */
    timeoutMs?: number;
  }
  | { kind: "lock"; name: string; op: "release"; token: string };

/** One page of a listing, and the cursor of the next page (absent on the last). */
export interface Page<T> {
  /** The items of this page. */
  items: T[];
  /** Pass it to get the next page; absent when this page is the last. */
  cursor?: string;
}

/** What a queue's `get` or `tryGet` replies: an item, or why there is none. */
export type QueueTake =
  | { value: Uint8Array }
  | { end: "closed" | "empty" | "timeout" };

/**
 * What each call replies, by `"kind.op"`.
 *
 * `dict.delete`, `set.delete` reply whether the key or member was there;
 * `set.add` whether it was new; `counter.add` the new value; `queue.put`
 * `false` when the queue is closed; `queue.get` never `{ end: "empty" }`,
 * `queue.tryGet` never `{ end: "timeout" }`; `barrier.wait` the arrival's
 * index in its round; `lock.release` whether the token still held the lock.
 */
export interface CollectionReplies {
  /** The value, or `undefined` when the key has none. */
  "dict.get": Uint8Array | undefined;
  /** Whether the key has a value. */
  "dict.has": boolean;
  /** Whether the key had a value. */
  "dict.delete": boolean;
  /** Nothing. */
  "dict.set": void;
  /** The value (absent when none) and its version (0 when none). */
  "dict.getVersioned": { value?: Uint8Array; version: number };
  /** Whether the version was current, and so the write made. */
  "dict.setIfVersion": boolean;
  /** A page of keys. */
  "dict.keys": Page<string>;
  /** A page of entries. */
  "dict.entries": Page<[string, Uint8Array]>;
  /** How many keys have a value. */
  "dict.size": number;
  /** Whether the member was new. */
  "set.add": boolean;
  /** Whether the member was there. */
  "set.delete": boolean;
  /** Whether the value is a member. */
  "set.has": boolean;
  /** A page of members. */
  "set.values": Page<Uint8Array>;
  /** How many members. */
  "set.size": number;
  /** The new value. */
  "counter.add": number;
  /** The value (0 for a counter never changed). */
  "counter.value": number;
  /** Nothing. */
  "counter.reset": void;
  /** `false` when the queue is closed (the value was not put). */
  "queue.put": boolean;
  /** The first value, or why none: `closed` (and empty) or `timeout`. */
  "queue.get": QueueTake;
  /** The first value, or why none: `closed` (and empty) or `empty`. */
  "queue.tryGet": QueueTake;
  /** How many values wait. */
  "queue.size": number;
  /** Nothing. */
  "queue.close": void;
  /** The arrival's index in its round, or `timeout`. */
  "barrier.wait": { index: number } | { end: "timeout" };
  /** The token of the hold, or `timeout`. */
  "lock.acquire": { token: string } | { end: "timeout" };
  /** Whether the token still held the lock. */
  "lock.release": boolean;
}

/** The `"kind.op"` of a call. */
export type CallKey<C extends CollectionCall = CollectionCall> = C extends
  { kind: infer K extends string; op: infer O extends string } ? `${K}.${O}`
  : never;

/** The reply of call `C`. */
export type ReplyOf<C extends CollectionCall> = CollectionReplies[CallKey<C>];

/**
 * A store of named collections, shared by the client and the nodes of one
 * pool.
 *
 * @example A backend that only counts
 * ```ts
 * import type { CollectionBackend, CollectionCall } from "./backend.ts";
 *
 * const counts = new Map<string, number>();
 * const backend: CollectionBackend = {
 *   call(call: CollectionCall) {
 *     if (call.kind !== "counter") {
 *       return Promise.reject(new TypeError(`Cannot ${call.op}: only counters here`));
 *     }
 *     const now = (counts.get(call.name) ?? 0) + (call.op === "add" ? call.n : 0);
 *     counts.set(call.name, call.op === "reset" ? 0 : now);
 *     return Promise.resolve(call.op === "reset" ? undefined : now);
 *   },
 *   forget: () => Promise.resolve(),
 *   close: () => Promise.resolve(),
 * };
 * console.log(await backend.call({ kind: "counter", name: "n", op: "add", n: 2 }, "client")); // 2
 * ```
 */
export interface CollectionBackend {
  /**
   * Makes one call.
   *
   * @param call The call, its values encoded.
   * @param holder Who calls: `"client"` or a node's id.
   * @param signal Ends a blocked call (`queue.get`, `barrier.wait`,
   *   `lock.acquire`): it rejects with `signal.reason`, withdraws its barrier
   *   arrival and never leaves a lock granted.
   * @returns The reply ({@linkcode ReplyOf}).
   */
  call(
    call: CollectionCall,
    holder: string,
    signal?: AbortSignal,
  ): Promise<unknown>;
  /**
   * A node is lost (or the client leaves): releases the locks `holder`
   * holds, ends its blocked calls (they reject) and withdraws its barrier
   * arrivals.
   */
  forget(holder: string): Promise<void>;
  /** Ends every blocked call and lets go of the backend's resources. */
  close(): Promise<void>;
}

/** What a backend is told when the pool opens it. */
export interface CollectionsContext {
  /** The pool's id, unique per pool: a backend shared by several pools keeps each pool's collections apart by it. */
  readonly poolId: string;
  /**
   * The private address of the pool's head node (node 0), once it has one,
   * for a backend the head serves (`sky.Redis({ on: "head" })`). Rejects
   * when the pool closes first. Absent outside a pool.
   */
  readonly headAddress?: () => Promise<string>;
}

/**
 * How the workers of a pool reach a backend of their own: the worker
 * imports `module` and calls its exported
 * `openBackend(config, context): Promise<CollectionBackend>`.
 */
export interface WorkerBackendSpec {
  /** Specifier of the module, relative to the worker's own `worker/main.ts`. */
  readonly module: string;
  /** Options for `openBackend` (sent to each node; must survive the codec). */
  readonly config: unknown;
}

/**
 * Where a pool's collections live: the value of the pool's `collections`
 * option (the embedded default, or `sky.Redis(...)`).
 */
export interface CollectionsOption {
  /** A short name for messages: `"embedded"`, `"redis"`. */
  readonly kind: string;
  /** Opens the backend the client uses; called once per pool. */
  open(context: CollectionsContext): Promise<CollectionBackend>;
  /**
   * How workers reach the collections: absent, through the client over the
   * pool's connection; else the module that opens their own backend.
   */
  worker?(context: CollectionsContext): WorkerBackendSpec;
  /**
   * What the backend needs of the pool's machines: Debian packages their
   * bootstrap installs (`apt`; a pool of local processes refuses them), and
   * a private network between them (`privateNetwork`; refused on providers
   * without one).
   */
  readonly needs?: { apt?: readonly string[]; privateNetwork?: boolean };
}

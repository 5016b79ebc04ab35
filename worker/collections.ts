/**
 * The worker's relay of collection calls: tasks call collections from their
 * sandbox (or, unsandboxed, from the worker itself); the worker passes each
 * call to the client as a `coll` message and the reply back to its caller.
 * A task needs no permission for this: the sandbox talks only to its
 * worker, over the channel it already has.
 *
 * The relay also keeps what a task holds: when the task ends (finished,
 * failed, cancelled or past its timeout), its blocked calls are withdrawn
 * and the locks it acquired and did not release are released, so a task
 * that is stopped never leaves a lock held. (A lost node's are released by
 * the client, which forgets its holder.)
 *
 * Between a sandbox and the worker, the messages are `{ t: "coll", c, id?,
 * k, b }` (call `c` of the sandbox, made by task `id`, `k` its `"kind.op"`,
 * `b` the encoded call), `{ t: "collx", c }` (the caller stopped waiting)
 * and, back, `{ t: "collr", batch }` of `{ c, b, err? }` (the replies of one turn).
 *
 * @module
 */
import { decode, encode, toWireError } from "../src/wire/codec.ts";
import { sleep } from "../src/_timers.ts";
import type {
  CollectionBackend,
  CollectionCall,
  CollectionsContext,
} from "../src/collections/backend.ts";
import { fromWireError, type WireError } from "../src/wire/wire_error.ts";
import type { WorkerMessage } from "../src/wire/messages.ts";
import { bytesCaller, type Caller } from "../src/collections/_context.ts";
import { Batcher, pack, unpack } from "../src/collections/_batch.ts";
import { giveBack } from "../src/collections/_give_back.ts";

/** The calls that wait: withdrawn when their task ends. */
const BLOCKING = new Set(["queue.get", "barrier.wait", "lock.acquire"]);

interface Pending {
  task: number | undefined;
  op: string;
  settle(payload: Uint8Array, err: boolean): void;
  /** For a lock's call or a queue's get: the collection's name, and the token a release gives back. */
  target?: { name: string; token?: string };
}

interface TaskHolds {
  calls: Set<number>;
  /** Tokens of the locks it holds, and their lock's name. */
  locks: Map<string, string>;
}

/**
 * Passes collection calls between tasks and the client.
 *
 * @example
 * ```ts
 * import { CollectionRelay } from "./collections.ts";
 * import { encode } from "../src/wire/codec.ts";
 *
 * const sent: unknown[] = [];
 * const relay = new CollectionRelay((header) => void sent.push(header));
 * const call = { kind: "counter", name: "n", op: "add", n: 1 };
 * relay.call(encode(call), "counter.add", 7, () => {});
 * await Promise.resolve();
 * console.log(sent); // [ { t: "coll", c: [ 1 ] } ]
 * ```
 */
export class CollectionRelay {
  #send: (header: WorkerMessage, payload?: Uint8Array) => void;
  #next = 1;
  #pending = new Map<number, Pending>();
  #tasks = new Map<number, TaskHolds>();
  /** Tasks that ended lately. */
  #ended = new Set<number>();
  /** Blocking calls withdrawn, whose reply may still come: what it took is given back. */
  #withdrawn = new Map<number, { kind: string; op: string; name: string }>();
  /** Sandbox calls in flight, by `sid:c`, to withdraw them. */
  #fromSandboxes = new Map<string, number>();

  /** Calls to send to the client at the end of this turn. */
  #calls: Batcher<[number, Uint8Array]>;
  /** Calls withdrawn, to tell the client at the end of this turn. */
  #withdrawals: Batcher<number>;
  /** Replies to post to each sandbox at the end of this turn. */
  #toSandboxes = new Map<
    number,
    {
      batch: Batcher<[unknown, ArrayBuffer]>;
      post: (message: unknown, transfer: ArrayBuffer[]) => void;
    }
  >();

  /** A backend of the worker's own, when the pool's collections have one. */
  #direct:
    | {
      backend: Promise<CollectionBackend>;
      holder: string;
      calls: Map<number, AbortController>;
    }
    | undefined;

  /** @param send Sends a message to the client. */
  constructor(send: (header: WorkerMessage, payload?: Uint8Array) => void) {
    this.#send = send;
    this.#calls = new Batcher((calls) =>
      this.#send(
        { t: "coll", c: calls.map(([c]) => c) },
        pack(calls.map(([, bytes]) => bytes)),
      )
    );
    this.#withdrawals = new Batcher((ids) =>
      this.#send({ t: "coll", c: ids, x: true })
    );
  }

  #holds(task: number): TaskHolds {
    let holds = this.#tasks.get(task);
    if (!holds) {
      this.#tasks.set(task, holds = { calls: new Set(), locks: new Map() });
    }
    return holds;
  }

  /**
   * Sends a call to the client.
   *
   * @param bytes The encoded call.
   * @param op Its `"kind.op"`.
   * @param task The task that makes it, if any.
   * @param settle Gets the encoded reply, or (`err`) the encoded error.
   * @returns The call's id, to withdraw it.
   */
  call(
    bytes: Uint8Array,
    op: string,
    task: number | undefined,
    settle: (payload: Uint8Array, err: boolean) => void,
  ): number {
    const c = this.#next++;
    const pending: Pending = { task, op, settle };
    if (op.startsWith("lock.") || op === "queue.get") {
      const { name, token } = decode(bytes) as {
        name: string;
        token?: string;
      };
      pending.target = { name, token };
    }
    if (
      task !== undefined && !this.#ended.has(task) &&
      (BLOCKING.has(op) || op === "lock.release")
    ) {
      this.#holds(task).calls.add(c);
    }
    this.#pending.set(c, pending);
    this.#dispatch(c, bytes);
    return c;
  }

  /** The caller stopped waiting for call `c`. */
  withdraw(c: number): void {
    const pending = this.#pending.get(c);
    if (!pending) return;
    this.#pending.delete(c);
    if (pending.task !== undefined) {
      this.#tasks.get(pending.task)?.calls.delete(c);
    }
    if (BLOCKING.has(pending.op) && pending.target) {
      const [kind, op] = pending.op.split(".");
      this.#withdrawn.set(c, { kind, op, name: pending.target.name });
    }
    const direct = this.#direct?.calls.get(c);
    if (direct) direct.abort(new Error("The caller stopped waiting"));
    else this.#withdrawals.push(c);
  }

  /** Sends a call to the client, or to the worker's own backend. */
  #dispatch(c: number, bytes: Uint8Array): void {
    const direct = this.#direct;
    if (!direct) return this.#calls.push([c, bytes]);
    const controller = new AbortController();
    direct.calls.set(c, controller);
    direct.backend
      .then((backend) =>
        backend.call(
          decode(bytes) as CollectionCall,
          direct.holder,
          controller.signal,
        )
      )
      .then((reply): [Uint8Array, boolean] => [encode(reply, "reply"), false])
      .catch((error): [Uint8Array, boolean] => [
        encode(toWireError(error), "error"),
        true,
      ])
      .then(([payload, err]) => {
        direct.calls.delete(c);
        this.reply(c, payload, err);
      });
  }

  /**
   * Opens the worker's own backend (the client's `colls` message): the
   * tasks' calls go there from now on.
   *
   * @param module The module that opens it, relative to `worker/main.ts`.
   * @param config Its options.
   * @param holder The id the node's calls are made with.
   * @param poolId The pool's id.
   */
  open(module: string, config: unknown, holder: string, poolId: string): void {
    const backend = import(
      new URL(module, new URL("./main.ts", import.meta.url)).href
    )
      .then((
        m: {
          openBackend(
            config: unknown,
            context: CollectionsContext,
          ): Promise<CollectionBackend>;
        },
      ) => m.openBackend(config, { poolId }));
    backend.catch(() => {});
    this.#direct = { backend, holder, calls: new Map() };
  }

  /**
   * Closes the worker's own backend, if it has one (the worker is exiting):
   * e.g. the head node's Redis server stops with it. Waits at most
   * `timeoutMs`.
   */
  async close(timeoutMs = 2_000): Promise<void> {
    const direct = this.#direct;
    if (!direct) return;
    this.#direct = undefined;
    const stop = new AbortController();
    await Promise.race([
      direct.backend.then((b) => b.close()).catch(() => {}),
      sleep(timeoutMs, stop.signal).catch(() => {}),
    ]).finally(() => stop.abort());
  }

  /**
   * The client's `collr` message: replies to calls `ids`, packed in
   * `payload`; those in `errors` are errors.
   */
  replies(
    ids: number[],
    errors: number[] | undefined,
    payload: Uint8Array,
  ): void {
    const parts = unpack(payload);
    const failed = new Set(errors);
    ids.forEach((c, i) => this.reply(c, parts[i], failed.has(c)));
  }

  /** The client's reply to call `c`. */
  reply(c: number, payload: Uint8Array, err: boolean): void {
    const pending = this.#pending.get(c);
    if (!pending) {
      // Answered as its caller gave up waiting: what it took is given back.
      const call = this.#withdrawn.get(c);
      this.#withdrawn.delete(c);
      const back = call && !err ? giveBack(call, decode(payload)) : undefined;
      if (back) this.#dispatch(this.#next++, encode(back, "call"));
      return;
    }
    this.#pending.delete(c);
    const task = pending.task;
    const holds = task === undefined ? undefined : this.#tasks.get(task);
    holds?.calls.delete(c);
    if (!err && pending.op === "lock.acquire" && pending.target) {
      const reply = decode(payload) as { token?: string };
      // A lock taken outside any task is the node's until released.
      if (reply.token !== undefined && task !== undefined) {
        // Granted after its task ended: given back at once.
        if (holds) holds.locks.set(reply.token, pending.target.name);
        else this.#release(pending.target.name, reply.token);
      }
    }
    if (pending.op === "lock.release" && pending.target?.token) {
      holds?.locks.delete(pending.target.token);
    }
    pending.settle(payload, err);
  }

  /**
   * Task `task` ended: its blocked calls are withdrawn and its locks
   * released.
   */
  taskEnded(task: number): void {
    // Calls its code still makes hold nothing (a lock they get is given back).
    this.#ended.add(task);
    if (this.#ended.size > 8192) {
      // The newest 4096 kept, in bulk: deleting the oldest one at a time
      // makes each next lookup of the oldest walk past the deleted ones.
      this.#ended = new Set([...this.#ended].slice(-4096));
    }
    const holds = this.#tasks.get(task);
    if (!holds) return;
    this.#tasks.delete(task);
    for (const c of holds.calls) {
      const pending = this.#pending.get(c);
      if (pending && BLOCKING.has(pending.op)) this.withdraw(c);
      else if (pending) pending.task = undefined;
    }
    for (const [token, name] of holds.locks) this.#release(name, token);
  }

  /** Releases a lock no task holds any more; its reply is ignored. */
  #release(name: string, token: string): void {
    this.#dispatch(
      this.#next++,
      encode({ kind: "lock", name, op: "release", token }, "call"),
    );
  }

  /**
   * Handles a message from a sandbox (untrusted: checked).
   *
   * @param sid The sandbox's id.
   * @param message `{ t: "coll" | "collx", ... }`.
   * @param reply Posts the reply to the sandbox.
   */
  fromSandbox(
    sid: number,
    message: Record<string, unknown>,
    reply: (message: unknown, transfer: ArrayBuffer[]) => void,
  ): void {
    if (typeof message.c !== "number") return;
    const key = `${sid}:${message.c}`;
    if (message.t === "collx") {
      const c = this.#fromSandboxes.get(key);
      this.#fromSandboxes.delete(key);
      if (c !== undefined) this.withdraw(c);
      return;
    }
    if (message.t !== "coll" || !(message.b instanceof ArrayBuffer)) return;
    const local = message.c;
    const c = this.call(
      new Uint8Array(message.b),
      String(message.k),
      typeof message.id === "number" ? message.id : undefined,
      (payload, err) => {
        this.#fromSandboxes.delete(key);
        const buffer = payload.byteOffset === 0 &&
            payload.byteLength === payload.buffer.byteLength
          ? payload.buffer as ArrayBuffer
          : payload.slice().buffer;
        this.#toSandbox(sid, reply).batch.push([
          { c: local, b: buffer, err },
          buffer,
        ]);
      },
    );
    this.#fromSandboxes.set(key, c);
  }

  /** The replies on their way to a sandbox, posted together at the end of the turn. */
  #toSandbox(
    sid: number,
    post: (message: unknown, transfer: ArrayBuffer[]) => void,
  ) {
    let out = this.#toSandboxes.get(sid);
    if (!out) {
      const batch = new Batcher<[unknown, ArrayBuffer]>((replies) =>
        this.#toSandboxes.get(sid)?.post(
          { t: "collr", batch: replies.map(([m]) => m) },
          replies.map(([, b]) => b),
        )
      );
      this.#toSandboxes.set(sid, out = { batch, post });
    }
    return out;
  }

  /**
   * A sandbox ended: its calls in flight are withdrawn.
   *
   * @param sid The sandbox's id.
   */
  sandboxEnded(sid: number): void {
    this.#toSandboxes.delete(sid);
    const prefix = `${sid}:`;
    for (const [key, c] of this.#fromSandboxes) {
      if (!key.startsWith(prefix)) continue;
      this.#fromSandboxes.delete(key);
      this.withdraw(c);
    }
  }

  /**
   * The caller of tasks that run in the worker itself (no sandbox).
   *
   * @param task The task whose code is running, if any.
   */
  caller(task: () => number | undefined): Caller {
    return bytesCaller((bytes, call, signal) =>
      new Promise<Uint8Array>((resolve, reject) => {
        const c = this.call(
          bytes,
          `${call.kind}.${call.op}`,
          task(),
          (payload, err) => {
            signal?.removeEventListener("abort", abort);
            if (!err) return resolve(payload);
            reject(fromWireError(decode(payload) as WireError));
          },
        );
        const abort = () => {
          this.withdraw(c);
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", abort, { once: true });
      })
    );
  }
}

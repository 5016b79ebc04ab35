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
 * and, back, `{ t: "collr", c, b, err? }`.
 *
 * @module
 */
import { decode, encode } from "../src/wire/codec.ts";
import { fromWireError, type WireError } from "../src/wire/wire_error.ts";
import type { WorkerMessage } from "../src/wire/messages.ts";
import { bytesCaller, type Caller } from "../src/collections/_context.ts";

/** The calls that wait: withdrawn when their task ends. */
const BLOCKING = new Set(["queue.get", "barrier.wait", "lock.acquire"]);

interface Pending {
  task: number | undefined;
  op: string;
  settle(payload: Uint8Array, err: boolean): void;
  /** For a lock's call: the lock's name, and the token a release gives back. */
  lock?: { name: string; token?: string };
}

interface TaskHolds {
  calls: Set<number>;
  /** Tokens of the locks it holds, and their lock's name. */
  locks: Map<string, string>;
}

/** Passes collection calls between tasks and the client. */
export class CollectionRelay {
  #send: (header: WorkerMessage, payload?: Uint8Array) => void;
  #next = 1;
  #pending = new Map<number, Pending>();
  #tasks = new Map<number, TaskHolds>();
  /** Lock acquisitions withdrawn, whose grant may still come: to give back. */
  #withdrawnLocks = new Map<number, string>();
  /** Sandbox calls in flight, by `sid:c`, to withdraw them. */
  #fromSandboxes = new Map<string, number>();

  /** @param send Sends a message to the client. */
  constructor(send: (header: WorkerMessage, payload?: Uint8Array) => void) {
    this.#send = send;
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
    if (op.startsWith("lock.")) {
      const { name, token } = decode(bytes) as {
        name: string;
        token?: string;
      };
      pending.lock = { name, token };
    }
    if (task !== undefined && (BLOCKING.has(op) || op === "lock.release")) {
      this.#holds(task).calls.add(c);
    }
    this.#pending.set(c, pending);
    this.#send({ t: "coll", c }, bytes);
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
    if (pending.op === "lock.acquire") {
      this.#withdrawnLocks.set(c, pending.lock?.name ?? "");
    }
    this.#send({ t: "coll", c, x: true });
  }

  /** The client's reply to call `c`. */
  reply(c: number, payload: Uint8Array, err: boolean): void {
    const pending = this.#pending.get(c);
    if (!pending) {
      // A lock granted as its caller gave up waiting: given back.
      const name = this.#withdrawnLocks.get(c);
      this.#withdrawnLocks.delete(c);
      const token = name !== undefined && !err
        ? (decode(payload) as { token?: string }).token
        : undefined;
      if (token !== undefined) this.#release(name!, token);
      return;
    }
    this.#pending.delete(c);
    const task = pending.task;
    const holds = task === undefined ? undefined : this.#tasks.get(task);
    holds?.calls.delete(c);
    if (!err && pending.op === "lock.acquire" && pending.lock) {
      const reply = decode(payload) as { token?: string };
      if (reply.token !== undefined) {
        // Granted after its task ended: given back at once.
        if (holds) holds.locks.set(reply.token, pending.lock.name);
        else this.#release(pending.lock.name, reply.token);
      }
    }
    if (pending.lock?.token !== undefined) {
      holds?.locks.delete(pending.lock.token);
    }
    pending.settle(payload, err);
  }

  /**
   * Task `task` ended: its blocked calls are withdrawn and its locks
   * released.
   */
  taskEnded(task: number): void {
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
    this.#send(
      { t: "coll", c: this.#next++ },
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
        reply({ t: "collr", c: local, b: buffer, err }, [buffer]);
      },
    );
    this.#fromSandboxes.set(key, c);
  }

  /**
   * A sandbox ended: its calls in flight are withdrawn.
   *
   * @param sid The sandbox's id.
   */
  sandboxEnded(sid: number): void {
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

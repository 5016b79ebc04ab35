/**
 * The client's side of the collections: opens the pool's backend, serves
 * the calls the nodes send over their connections (the embedded default's
 * relay; a backend the workers reach on their own gets none), and makes the
 * caller of `pool.dict(...)` and the others.
 *
 * A call from a node arrives as a `coll` message whose payload is the
 * encoded {@linkcode CollectionCall}; its reply goes back as a `collr`
 * message with the encoded reply, or with `err` and an encoded wire error.
 * A `coll` message with `x` withdraws a call whose caller stopped waiting.
 * A node's calls are made with the node session's holder id; when the
 * session ends, the backend forgets that holder.
 *
 * @module
 */
import { decode, encode, toWireError } from "../wire/codec.ts";
import type {
  CollectionBackend,
  CollectionCall,
  CollectionsContext,
  CollectionsOption,
  WorkerBackendSpec,
} from "./backend.ts";
import { type Caller, clientCaller, registerPool } from "./_context.ts";
import { embedded } from "./embedded.ts";
import { giveBack } from "./_give_back.ts";
import { ConfigError, PoolClosedError } from "../errors.ts";
import type { Provider } from "../provider.ts";
import { sleep } from "../_timers.ts";

/** Sends the reply to a node's call `c`. */
export type ReplySender = (
  c: number,
  payload: Uint8Array,
  err: boolean,
) => void;

/** One node session's calls, as the service serves them. */
export interface NodeCollections {
  /** The id the node's calls are made with. */
  holder: string;
  /**
   * The backend the node's worker opens for itself (`collections` message),
   * when the backend has one; else the node's calls come to the client.
   */
  spec?: WorkerBackendSpec & CollectionsContext;
  /** A `coll` message arrived. */
  message(c: number, withdraw: boolean, payload: Uint8Array): void;
  /**
   * The session ended: its holder is forgotten, its calls withdrawn.
   * Resolves (never rejects) once the backend has forgotten the holder, or
   * after {@linkcode FORGET_WAIT_MS}: what the node held must be let go
   * before its tasks are retried (a backend on a server forgets over the
   * network, and a retried task must not find its first run's barrier
   * arrival still there).
   */
  end(): Promise<void>;
}

let holders = 0;

/** What the pool tells its collections of its machines. */
export interface PoolMachines {
  /** The providers its machines may come from. */
  providers(): Provider<unknown>[];
  /** The head node's private address, or `""` while it has none. */
  headAddress(): string;
}

/** How long a lost node's retries wait at most for its holder to be forgotten. */
export const FORGET_WAIT_MS = 5_000;

/**
 * Opens a pool's collections and serves them.
 *
 * @example
 * ```ts
 * import { CollectionService } from "./service.ts";
 *
 * const service = new CollectionService();
 * await service.open({ poolId: "sky-example" });
 * console.log(await service.caller({ kind: "counter", name: "n", op: "add", n: 1 })); // 1
 * await service.close();
 * ```
 */
export class CollectionService {
  /** Where the collections live. */
  readonly option: CollectionsOption;
  #backend: Promise<CollectionBackend> | undefined;
  #closed = false;
  #caller: Caller | undefined;
  #context: CollectionsContext | undefined;
  #unregister = () => {};
  /** The backend, once open. */
  #opened: CollectionBackend | undefined;

  /** What the pool says of its machines (see {@linkcode attach}). */
  #machines: PoolMachines | undefined;

  /** @param option The pool's `collections` option; default: embedded. */
  constructor(option: CollectionsOption = embedded()) {
    this.option = option;
  }

  /**
   * Tells the service about the pool's machines (the pool's bring-up does):
   * its providers, checked against what the backend needs, and its head
   * node's address, for a backend the head serves.
   */
  attach(machines: PoolMachines): void {
    this.#machines = machines;
  }

  /** The head node's private address, once it has one. */
  async #headAddress(): Promise<string> {
    for (;;) {
      const address = this.#machines?.headAddress();
      if (address) return address;
      if (this.#closed) {
        throw new PoolClosedError(
          "The pool closed before its head node came up",
        );
      }
      await sleep(100);
    }
  }

  /** Opens the backend (once), and makes it the client's `sky.dict(...)`'s while it is open. */
  open(context: CollectionsContext): Promise<CollectionBackend> {
    // A backend one node serves to the others needs a private network.
    const without = this.option.needs?.privateNetwork
      ? this.#machines?.providers().find((p) => p.privateNetwork === false)
      : undefined;
    if (without) {
      return Promise.reject(
        new ConfigError(
          `Cannot start pool: its collections (${this.option.kind}) are served by the head node to the others, ` +
            `and ${without.name} machines have no private network between them; ` +
            "leave 'collections' out (the embedded default works on every provider) or give a server every node reaches",
        ),
      );
    }
    // On the client, sky.dict(...) and the others find it while it is open.
    if (!this.#context) {
      this.#unregister = registerPool(context.poolId, this.caller);
    }
    this.#context ??= context;
    this.#backend ??= this.option.open({
      ...context,
      headAddress: () => this.#headAddress(),
    });
    this.#backend.then((backend) => {
      if (!this.#closed) this.#opened = backend;
    }, () => {});
    return this.#backend;
  }

  #get(): Promise<CollectionBackend> {
    if (this.#closed) {
      return Promise.reject(
        new PoolClosedError("The pool's collections are closed"),
      );
    }
    return this.#backend ??
      Promise.reject(new Error("The pool's collections are not open yet"));
  }

  /** The caller of `pool.dict(...)` and the others: holder `"client"`, replies copied. */
  readonly caller: Caller = (call, signal) => {
    if (this.#caller) return this.#caller(call, signal);
    return this.#get().then((backend) => {
      this.#caller ??= clientCaller(backend);
      return this.#caller(call, signal);
    });
  };

  /**
   * Serves a node session's calls.
   *
   * @param node The node's index (for its holder id).
   * @param reply Sends a reply back to the node.
   */
  serve(node: number, reply: ReplySender): NodeCollections {
    const holder = `node-${node}-${(holders++).toString(36)}`;
    const calls = new Map<number, AbortController | null>();
    let ended = false;
    const answer = (c: number, value: unknown, err: boolean) => {
      if (ended || !calls.delete(c)) return;
      let bytes: Uint8Array;
      try {
        bytes = encode(err ? toWireError(value) : value, "reply");
      } catch (error) {
        bytes = encode(toWireError(error), "reply");
        err = true;
      }
      reply(c, bytes, err);
    };
    const context = this.#context;
    const spec = context && this.option.worker?.(context);
    return {
      holder,
      ...(spec ? { spec: { ...spec, ...context } } : {}),
      message: (c, withdraw, payload) => {
        if (withdraw) {
          calls.get(c)?.abort(new Error("The caller stopped waiting"));
          calls.delete(c);
          return;
        }
        let call: CollectionCall;
        try {
          call = checkCall(decode(payload));
        } catch (error) {
          calls.set(c, null);
          return answer(c, error, true);
        }
        // Only a call that waits can be withdrawn: only it needs a signal.
        const controller = BLOCKING.has(`${call.kind}.${call.op}`)
          ? new AbortController()
          : null;
        calls.set(c, controller);
        const run = (backend: CollectionBackend) =>
          backend.call(call, holder, controller?.signal).then(
            async (value) => {
              // Answered as its caller gave up waiting: given back.
              const back = calls.has(c) ? undefined : giveBack(call, value);
              if (back) await backend.call(back, holder);
              answer(c, value, false);
            },
          );
        (this.#opened ? run(this.#opened) : this.#get().then(run)).catch(
          (error) => answer(c, error, true),
        );
      },
      end: () => {
        if (ended) return Promise.resolve();
        ended = true;
        for (const controller of calls.values()) {
          controller?.abort(new Error("The node is gone"));
        }
        calls.clear();
        const forgotten = this.#backend?.then((backend) =>
          backend.forget(holder)
        ).catch(() => {});
        const stop = new AbortController();
        return Promise.race([
          forgotten,
          sleep(FORGET_WAIT_MS, stop.signal).catch(() => {}),
        ]).finally(() => stop.abort());
      },
    };
  }

  /** Closes the backend; calls made after reject with `PoolClosedError`, and `sky.dict(...)` on the client no longer finds it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unregister();
    this.#opened = undefined;
    const backend = await this.#backend?.catch(() => undefined);
    await backend?.close();
  }
}

const KINDS = new Set(["dict", "set", "counter", "queue", "barrier", "lock"]);
/** The calls that wait. */
const BLOCKING = new Set(["queue.get", "barrier.wait", "lock.acquire"]);

/**
 * Checks the shape of a call that came over the wire (what the backends
 * rely on; the values themselves are not looked into).
 */
function checkCall(value: unknown): CollectionCall {
  const call = value as Record<string, unknown> | null;
  if (
    typeof call !== "object" || call === null ||
    !KINDS.has(call.kind as string) ||
    typeof call.name !== "string" || typeof call.op !== "string"
  ) {
    throw new TypeError("Cannot serve a malformed collection call");
  }
  return call as unknown as CollectionCall;
}

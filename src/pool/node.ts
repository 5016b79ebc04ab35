/**
 * A node session: the client's side of one worker's byte stream. It does the
 * handshake, multiplexes tasks by id, and reports the worker's logs and its
 * loss. It knows nothing of providers or scheduling.
 *
 * @module
 */
import { decode, encode, toWireError } from "../wire/codec.ts";
import type { WireError } from "../wire/wire_error.ts";
import {
  NodeLostError,
  ProtocolError,
  RemoteError,
  SerializationError,
} from "../errors.ts";
import { encodeFrame, FrameDecoder } from "../wire/frames.ts";
import { FrameWriter } from "../wire/frame_writer.ts";
import {
  type ClientMessage,
  fastWorkerMessage,
  PROTOCOL_VERSION,
  type SandboxSpec,
  type WorkerMessage,
} from "../wire/messages.ts";
import type { Channel } from "../transport/host.ts";
import { capLine, LineSplitter } from "../wire/output.ts";
import { Batcher, pack, unpack } from "../collections/_batch.ts";
import type {
  CollectionService,
  NodeCollections,
} from "../collections/service.ts";

const EMPTY = new Uint8Array(0);

/** What the worker said in its handshake. */
export interface WorkerHello {
  deno: string;
  pid: number;
  hostname: string;
  codeUrl: string;
}

/** What a node session reports to its owner. */
export interface NodeSessionHooks {
  /** A line a task wrote with `console.*`. */
  log(stream: "stdout" | "stderr", line: string, task?: number): void;
  /** The worker's stream ended or broke; every pending call has been rejected. */
  lost(reason: string): void;
  /** Serves the collection calls of the node's tasks (absent: they are refused). */
  collections?: CollectionService;
}

interface Call {
  resolve(payload: Uint8Array): void;
  reject(error: Error): void;
  stream?: CallStream;
}

/** What a streaming call is told, besides its end. */
export interface CallStream {
  /** The task's result is a stream: `item` calls and the end follow. */
  open(): void;
  /** A batch of the result's items (an encoded array). */
  item(payload: Uint8Array): void;
  /** The task took `bytes` more of its streamed argument `arg`. */
  credit(arg: number, bytes: number): void;
}

/** One worker's connection, seen from the client. */
export class NodeSession {
  /** The node's index. */
  readonly index: number;
  #channel: Channel;
  #writer: FrameWriter;
  #hooks: NodeSessionHooks;
  #calls = new Map<number, Call>();
  /** Computes whose sandbox spec this worker has been sent (`module\0key`). */
  #defined = new Set<string>();
  #hello?: { resolve(h: WorkerHello): void; reject(e: Error): void };
  #lost: string | undefined;
  #stderrTail: string[] = [];
  /** The collection calls of the node's tasks, served while the session lives. */
  #collections: NodeCollections | undefined;
  /** Replies to the worker's collection calls, sent together at the end of a turn. */
  #replies: Batcher<[number, Uint8Array, boolean]>;
  /** Set by the owner to map remote stack paths back to the client's. */
  rootUrl = "";
  /** The worker's code directory, as a URL, once the handshake is done. */
  codeUrl = "";

  /**
   * @param index The node's index.
   * @param channel The worker's stdio.
   * @param hooks Where logs and loss are reported.
   */
  constructor(index: number, channel: Channel, hooks: NodeSessionHooks) {
    this.index = index;
    this.#channel = channel;
    this.#hooks = hooks;
    this.#writer = new FrameWriter(channel.writable);
    this.#replies = new Batcher((replies) => {
      if (this.#lost) return;
      const err = replies.filter((r) => r[2]).map((r) => r[0]);
      this.#writer.send(
        {
          t: "collr",
          c: replies.map((r) => r[0]),
          ...(err.length > 0 ? { err } : {}),
        },
        pack(replies.map((r) => r[1])),
      );
    });
    this.#collections = hooks.collections?.serve(
      index,
      (c, payload, err) => this.#replies.push([c, payload, err]),
    );
    this.#read();
    this.#readStderr();
  }

  /** Calls in flight. */
  get inFlight(): number {
    return this.#calls.size;
  }

  /** Why the node was lost, if it was. */
  get lostReason(): string | undefined {
    return this.#lost;
  }

  /** The worker process's id on its machine, when the transport knows it. */
  get pid(): number | undefined {
    return this.#channel.pid;
  }

  /**
   * Does the handshake: protocol version, Deno version, code hash; the worker
   * imports `modules` before it answers.
   *
   * @throws {ProtocolError} On a version or code mismatch.
   * @throws {RemoteError} When importing a module failed on the worker.
   */
  handshake(
    message: Omit<Extract<ClientMessage, { t: "hello" }>, "t" | "v">,
  ): Promise<WorkerHello> {
    return new Promise<WorkerHello>((resolve, reject) => {
      if (this.#lost) return reject(new NodeLostError(this.index, this.#lost));
      this.#hello = { resolve, reject };
      this.#writer.write(
        encodeFrame({ t: "hello", v: PROTOCOL_VERSION, ...message }),
      );
      const own = this.#collections?.spec;
      if (own) {
        this.#writer.write(encodeFrame({
          t: "colls",
          m: own.module,
          holder: this.#collections!.holder,
          poolId: own.poolId,
        }, encode(own.config, "collections.config")));
      }
    });
  }

  /**
   * Sends a task, preceded by its compute's sandbox spec the first time this
   * worker runs that compute.
   *
   * @returns The encoded result.
   * @throws {RemoteError} When the task threw.
   * @throws {NodeLostError} When the node was lost before the result arrived.
   */
  call(
    id: number,
    module: string,
    key: string,
    args: Uint8Array,
    spec?: SandboxSpec,
    stream?: CallStream & { args: [number, boolean][] },
  ): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.#lost) return reject(new NodeLostError(this.index, this.#lost));
      if (args.length > this.#writer.maxMessageBytes) {
        return reject(
          new SerializationError(
            "args",
            `are ${args.length} bytes once encoded, past the limit of ${this.#writer.maxMessageBytes} bytes for one message`,
          ),
        );
      }
      this.#calls.set(id, { resolve, reject, stream });
      if (spec && !this.#defined.has(`${module}\0${key}`)) {
        this.#defined.add(`${module}\0${key}`);
        this.#writer.write(
          encodeFrame({ t: "define", m: module, k: key, spec }),
        );
      }
      this.#writer.send(
        stream?.args.length
          ? { t: "call", id, m: module, k: key, streams: stream.args }
          : { t: "call", id, m: module, k: key },
        args,
      );
    });
  }

  /**
   * Tells the worker that the pool's nodes changed: tasks sent after this
   * see the new `totalNodes`, `peers` and `headAddr` in `instanceInfo()`.
   */
  updateCluster(
    cluster: Omit<Extract<ClientMessage, { t: "cluster" }>, "t">,
  ): void {
    if (!this.#lost) {
      this.#writer.write(encodeFrame({ t: "cluster", ...cluster }));
    }
  }

  /**
   * Sends a stream message of a call in flight (items of a streamed
   * argument, credit for its streamed result, or leaving that result).
   * Ignored once the call has ended.
   */
  post(
    message: Extract<ClientMessage, { t: "in" | "credit" | "stop" }>,
    payload?: Uint8Array,
  ): void {
    if (this.#lost || !this.#calls.has(message.id)) return;
    this.#writer.send(message, payload);
  }

  /** Asks the worker to drop a task; its call rejects once the worker confirms. */
  cancel(id: number): void {
    if (!this.#lost && this.#calls.has(id)) {
      // An argument on its way in parts stops there (the worker drops it
      // and the task); the cancel follows.
      this.#writer.abandon(id);
      this.#writer.write(encodeFrame({ t: "cancel", id }));
    }
  }

  /** Sends the worker a heartbeat (see `heartbeat.ts`). */
  ping(): void {
    if (!this.#lost) this.#writer.write(encodeFrame({ t: "ping" }));
  }

  /** Forgets a call (its caller gave up), so a late answer is ignored. */
  forget(id: number): void {
    this.#calls.delete(id);
  }

  /**
   * Asks the worker to exit and waits up to `graceMs` for it, then kills it.
   * Pending calls are rejected with `reason`.
   */
  async close(reason: Error, graceMs = 5_000): Promise<void> {
    this.#rejectAll(reason);
    this.#collections?.end();
    this.#lost ??= "closed";
    await this.#writer.write(encodeFrame({ t: "bye" }));
    await this.#writer.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#channel.exited.then(() => true),
      new Promise<boolean>((resolve) =>
        timer = setTimeout(() => resolve(false), graceMs)
      ),
    ]);
    clearTimeout(timer);
    if (!exited) {
      this.#channel.kill();
      await this.#channel.exited;
    }
  }

  /** Kills the worker at once. */
  kill(): void {
    this.#channel.kill();
  }

  #rejectAll(error: Error): void {
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) call.reject(error);
    this.#hello?.reject(error);
    this.#hello = undefined;
  }

  #remoteError(payload: Uint8Array): RemoteError {
    const wire = decode(payload) as WireError;
    const cause = wire.cause === undefined
      ? undefined
      : this.#mapCause(wire.cause);
    const error = new RemoteError({
      name: wire.name,
      message: this.#clientPaths(wire.message),
      stack: wire.stack && this.#clientPaths(wire.stack),
    }, {
      cause,
      node: this.index,
    });
    // The remote error's own properties (`code`, ...) are kept, except where
    // they would hide the RemoteError's own.
    for (const [key, value] of Object.entries(wire.props ?? {})) {
      if (!(key in error)) {
        Object.defineProperty(error, key, { value, enumerable: true });
      }
    }
    return error;
  }

  #mapCause(cause: unknown, depth = 0): unknown {
    if (cause instanceof Error && depth < 8) {
      cause.message = this.#clientPaths(cause.message);
      if (cause.stack) cause.stack = this.#clientPaths(cause.stack);
      if (cause.cause !== undefined) {
        cause.cause = this.#mapCause(cause.cause, depth + 1);
      }
    }
    return cause;
  }

  /**
   * Names the client's own files where a text names the node's shipped copy
   * of them, as a URL (`file:///…/code/<hash>/app/x.ts`) or as a path
   * (`/…/code/<hash>/app/x.ts`).
   */
  #clientPaths(text: string): string {
    if (!text || !this.codeUrl || !this.rootUrl) return text;
    return clientPaths(text, this.codeUrl, this.rootUrl);
  }

  #dispatch(message: WorkerMessage, payload: Uint8Array): void {
    switch (message.t) {
      case "ok": {
        const call = this.#calls.get(message.id);
        this.#calls.delete(message.id);
        call?.resolve(payload);
        return;
      }
      case "err": {
        const call = this.#calls.get(message.id);
        if (!call) return;
        this.#calls.delete(message.id);
        if (message.path !== undefined) {
          const problem = (message.problem ?? "").replace(
            /^Cannot send .*?: it /,
            "",
          );
          call.reject(new SerializationError(message.path, problem));
          return;
        }
        try {
          call.reject(this.#remoteError(payload));
        } catch (error) {
          call.reject(
            new ProtocolError("The worker sent an unreadable error", {
              cause: error,
            }),
          );
        }
        return;
      }
      case "open":
        this.#calls.get(message.id)?.stream?.open();
        return;
      case "yield":
        this.#calls.get(message.id)?.stream?.item(payload);
        return;
      case "credit":
        this.#calls.get(message.id)?.stream?.credit(message.s, message.n);
        return;
      case "log":
        this.#hooks.log(message.s, capLine(message.l), message.id ?? undefined);
        return;
      case "hello": {
        const hello = this.#hello;
        this.#hello = undefined;
        if (!hello) return;
        this.codeUrl = message.codeUrl;
        if (message.failed) {
          const error = this.#remoteError(payload);
          hello.reject(error);
        } else {
          hello.resolve({
            deno: message.deno,
            pid: message.pid,
            hostname: message.hostname,
            codeUrl: message.codeUrl,
          });
        }
        return;
      }
      case "coll": {
        if (message.x) {
          for (const c of message.c) this.#collections?.message(c, true, EMPTY);
          return;
        }
        let calls: Uint8Array[];
        try {
          calls = unpack(payload);
        } catch (error) {
          this.#hooks.log("stderr", `unreadable collection calls: ${error}`);
          return;
        }
        message.c.forEach((c, i) => {
          if (this.#collections) {
            this.#collections.message(c, false, calls[i] ?? EMPTY);
          } else {
            this.#replies.push([
              c,
              encode(
                toWireError(
                  new Error("Collections are not available on this connection"),
                ),
                "error",
              ),
              true,
            ]);
          }
        });
        return;
      }
      case "perr":
        this.#hooks.log(
          "stderr",
          capLine(`protocol error reported by the worker: ${message.message}`),
        );
        return;
    }
  }

  async #read(): Promise<void> {
    const decoder = new FrameDecoder(fastWorkerMessage);
    let reason = "its worker exited";
    try {
      for await (const chunk of this.#channel.readable) {
        for (const frame of decoder.push(chunk)) {
          if (frame instanceof ProtocolError) {
            this.#hooks.log("stderr", frame.message);
            continue;
          }
          this.#dispatch(frame.header, frame.payload);
        }
      }
    } catch (error) {
      reason = `its stream broke: ${
        error instanceof Error ? error.message : String(error)
      }`;
    }
    const status = await Promise.race([
      this.#channel.exited,
      new Promise<undefined>((resolve) =>
        setTimeout(() => resolve(undefined), 200)
      ),
    ]);
    if (status) {
      reason = `its worker exited with ${
        status.signal ? `signal ${status.signal}` : `code ${status.code}`
      }`;
    }
    const tail = this.#stderrTail.join("").trim();
    if (tail && this.#lost === undefined) {
      reason += `; its last output: ${tail.slice(-2000)}`;
    }
    // What the node held is let go before its tasks are retried.
    await this.#collections?.end();
    if (this.#lost !== undefined) return;
    this.#lost = reason;
    this.#rejectAll(new NodeLostError(this.index, reason));
    this.#hooks.lost(reason);
  }

  /**
   * Reads what the worker process writes to stderr (its own messages, and
   * what sandboxes write to `Deno.stdout` or `Deno.stderr`) as lines of no
   * task: in time linear in the output, lines cut at `MAX_LINE_CHARS`.
   */
  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    const lines = new LineSplitter();
    const emit = (line: string) => {
      this.#stderrTail.push(line + "\n");
      if (this.#stderrTail.length > 20) this.#stderrTail.shift();
      this.#hooks.log("stderr", line);
    };
    try {
      for await (const chunk of this.#channel.stderr) {
        for (
          const line of lines.push(decoder.decode(chunk, { stream: true }))
        ) {
          emit(line);
        }
      }
    } catch {
      // The stream ended with the process.
    }
    for (const line of lines.push(decoder.decode())) emit(line);
    const last = lines.end();
    if (last !== undefined) emit(last);
  }
}

/**
 * Rewrites the shipped copy's locations in a text to the client's: the code
 * directory's URL to the project root's URL, and its path (the whole
 * directory, or a file under it) to the root's path.
 *
 * @param text An error message or stack.
 * @param codeUrl The code directory on the node, as a URL ending in `/`.
 * @param rootUrl The project root on the client, as a URL ending in `/`.
 * @returns The text naming the client's files.
 *
 * @example
 * ```ts
 * import { clientPaths } from "./node.ts";
 *
 * const text = "readfile '/n/code/ab12/app/data.csv'";
 * console.log(clientPaths(text, "file:///n/code/ab12/", "file:///home/me/proj/"));
 * // readfile '/home/me/proj/app/data.csv'
 * ```
 */
export function clientPaths(
  text: string,
  codeUrl: string,
  rootUrl: string,
): string {
  const out = text.replaceAll(codeUrl, rootUrl);
  const path = (url: string) => {
    try {
      const u = new URL(url);
      return u.protocol === "file:"
        ? decodeURIComponent(u.pathname).replace(/\/+$/, "")
        : undefined;
    } catch {
      return undefined;
    }
  };
  const code = path(codeUrl);
  const root = path(rootUrl);
  if (!code || root === undefined || !out.includes(code)) return out;
  const escaped = code.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return out.replace(
    new RegExp(`${escaped}(/|(?=$|[^\\w.\\-]))`, "g"),
    (_, slash: string) => slash ? `${root}/` : root || "/",
  );
}

/**
 * Sandboxes, seen from the worker process: where each task runs. The
 * {@linkcode SandboxManager} picks, starts, reuses, stops and replaces them;
 * beside it, `sandbox.ts` starts one, `permissions.ts` says what it may do,
 * `watchdog.ts` finds one that hangs and `outcome.ts` says how a task ended.
 *
 * The worker process holds every permission, so that it can grant them; it
 * runs no user code. Each task runs in a sandbox:
 *
 * - A **Deno sandbox** is a process of its own (`process.ts`): `deno run`
 *   with exactly its compute's permissions as flags, its own heap (a V8
 *   limit), globals, broadcast channels, Web Locks and signal handlers, and
 *   `caches`/`localStorage` taken away unless it may write anywhere. It can
 *   be killed in the middle of a busy loop. It imports its compute's module
 *   while it may still read the code (and the library), then drops that
 *   access before its first task. Each compute has sandboxes of its own:
 *   the tasks of one compute and one permission set share a warm sandbox
 *   (`isolation: "shared"`), or each gets a fresh one (`isolation:
 *   "task"`); two computes never share one, so that one cannot patch the
 *   built-ins (`DataView.prototype`, …) the other relies on. One sandbox per
 *   permission set in use is kept started ahead, with no module yet, for the
 *   next compute or fresh task that needs it.
 * - A **WASM sandbox** holds no permission at all and runs QuickJS compiled
 *   to WebAssembly, or raw WebAssembly modules, one task at a time, in a
 *   Node worker thread of the worker process.
 *
 * A task cancelled (or past its timeout, which the client turns into a
 * cancel) is stopped by terminating its sandbox, unless it shares a sandbox
 * with other running tasks and the sandbox still answers, in which case it
 * is left to finish unseen. A sandbox that ends while running tasks (out of
 * memory, an uncaught error, `process.exit()`) fails them with a
 * `SandboxError` and is replaced by the next task that needs it. A sandbox
 * that does not stop within seconds of being terminated (a native call that
 * never returns) is reported through `fatal`: the worker process must then
 * exit, and the pool restarts it.
 *
 * A Deno sandbox's `memoryLimit` bounds everything it allocates: its V8
 * heap (a heap that reaches it ends the process), and its resident memory
 * beyond what it held when it started (array buffers, WebAssembly memory,
 * the heaps of the Web Workers it starts), read every
 * {@linkcode MEMORY_WATCH_MS} ms (`memory.ts`): past it the sandbox is
 * killed. Its tasks fail with a `SandboxError` whose `code` is
 * `SANDBOX_OUT_OF_MEMORY` (the client names the compute and its
 * `memoryLimit`); the worker process goes on. A sandbox running tasks that
 * neither answers a ping nor uses the CPU for ten seconds is taken for hung,
 * and stopped.
 *
 * Tasks and results cross between the worker process and a sandbox as
 * `ArrayBuffer`s of encoded values, written raw on its channel (no
 * structured clone of decoded values), the messages of one turn in one
 * write; a warm shared sandbox may be sent tasks ahead of its slots and runs
 * them in turn.
 *
 * @module
 */
import type { InstanceInfo } from "../../src/instance.ts";
import { lineCost } from "../../src/wire/output.ts";
import type { SandboxSpec } from "../../src/wire/messages.ts";
import { after } from "../../src/_timers.ts";
import { setImmediate } from "node:timers";
import { type ArgumentFeed, passOn } from "./feed.ts";
import {
  failure,
  outOfMemory,
  SandboxError,
  type TaskOutcome,
} from "./outcome.ts";
import {
  DEFAULT_PERMISSIONS,
  NO_PERMISSIONS,
  type Permissions,
  resolvePaths,
} from "./permissions.ts";
import {
  type Outgoing,
  type PendingTask,
  type Sandbox,
  startSandbox,
  type TaskStreamHooks,
} from "./sandbox.ts";
import type { ByteSink, OutgoingStream } from "./channel.ts";
import { checkHangs, WATCH_MS } from "./watchdog.ts";
import { defaultHeapMb, MEMORY_WATCH_MS, residentBytes } from "./memory.ts";
import { SandboxSpawner } from "./process.ts";

/** Options of {@linkcode SandboxManager}. */
export interface SandboxManagerOptions {
  /** The shipped code's directory, where Deno sandboxes import modules from. */
  codeDir: string;
  /** What `sky.instanceInfo()` returns in sandboxes. */
  instance: InstanceInfo;
  /**
   * A line a task wrote with `console.*` (or its module, while it was
   * imported: then `id` is undefined). The sandbox is given back the
   * line's output credit once the returned promise settles, so a sandbox
   * has at most `LOG_CREDIT` bytes of output in flight.
   */
  log(
    id: number | undefined,
    stream: "stdout" | "stderr",
    line: string,
  ): void | Promise<void>;
  /** A sandbox could not be stopped: the worker process must exit. */
  fatal(reason: string): void;
  /**
   * A collection call from a sandbox, or its withdrawal (`t` is `"coll"` or
   * `"collx"`; see `worker/collections.ts`); `reply` posts the answer back.
   * A sandbox's calls end with it (`sandboxEnded`).
   */
  collections?: {
    fromSandbox(
      sid: number,
      message: Record<string, unknown>,
      reply: (message: unknown, transfer: ArrayBuffer[]) => void,
    ): void;
    sandboxEnded(sid: number): void;
  };
  /**
   * The heap limit of a Deno sandbox whose compute sets no `memoryLimit`, in
   * MiB.
   * @default half the machine's memory, at most 4096
   */
  defaultHeapMb?: number;
}

/**
 * A task's arguments smaller than this go to a Deno sandbox inside the
 * message that carries it (and its neighbours), not as a buffer of their
 * own: one encoding and one copy for many small tasks.
 */
const INLINE_BYTES = 16 * 1024;

/** What a compute that was never defined runs with. */
const DEFAULT_SPEC: SandboxSpec = {
  kind: "deno",
  permissions: NO_PERMISSIONS,
  isolation: "shared",
};

const WASM_HEAP_MB = 256;
/**
 * Sandboxes kept started ahead for a compute with `isolation: "task"` (one
 * for other computes): fresh tasks back to back take one each, and a
 * sandbox takes longer than a task to start.
 */
const FRESH_SPARES = 3;
/** How long a sandbox may take to stop once terminated. */
const STOP_MS = 5_000;
/** How long a sandbox shared with other tasks has to answer a cancel. */
const ANSWER_MS = 250;
/** How long past its time limit a QuickJS call may run before its sandbox is terminated. */
const JS_GRACE_MS = 1_000;
/** Ended tasks per sandbox whose late output lines keep their task's id. */
const RECENT = 64;
/**
 * Warm shared sandboxes kept (each a process of some 40 MB); past this the
 * least recently used idle one is stopped.
 */
const MAX_WARM = 16;

/** A stream message for a task's sandbox: items of an argument, credit, or leaving the result. */
export type TaskStreamMessage =
  | {
    t: "in";
    id: number;
    s: number;
    /** The items' buffer, and where they are in it (all of it by default). */
    b?: ArrayBuffer;
    o?: number;
    l?: number;
    end?: boolean;
    err?: boolean;
  }
  | { t: "credit"; id: number; n: number }
  | { t: "stop"; id: number };

/**
 * Runs tasks in sandboxes: starts, reuses, stops and replaces them.
 *
 * @example
 * ```ts ignore
 * const sandboxes = new SandboxManager({ codeDir, instance, log, fatal });
 * sandboxes.define("tests/fixtures/computes.ts", "square", spec);
 * const outcome = await sandboxes.run(1, "tests/fixtures/computes.ts", "square", payload);
 * ```
 */
export class SandboxManager {
  #options: SandboxManagerOptions;
  #codeUrl: string;
  #heapMb: number;
  #specs = new Map<string, SandboxSpec>();
  /** Each spec's permissions with paths resolved, heap limit and spare key. */
  #resolved = new WeakMap<
    SandboxSpec,
    { permissions: Permissions; heapMb: number; spareKey: string }
  >();
  #live = new Set<Sandbox>();
  #shared = new Map<string, Sandbox>();
  #idle = new Map<string, Sandbox[]>();
  /**
   * Sandboxes started ahead, by permission set: with no module yet, or
   * loading the module last used with that set.
   */
  #spares = new Map<string, Sandbox[]>();
  #byTask = new Map<number, Sandbox>();
  #nextSid = 1;
  #closed = false;
  #watch?: ReturnType<typeof setInterval>;
  #memoryWatch?: ReturnType<typeof setInterval>;
  #spawner = new SandboxSpawner();
  /** Tasks a Deno sandbox runs at once; it queues the others it is sent. */
  concurrency = 1;

  /** @param options Where the code is, what sandboxes see, and where they report. */
  constructor(options: SandboxManagerOptions) {
    this.#options = options;
    const dir = options.codeDir.replace(/\/$/, "");
    this.#options = { ...options, codeDir: dir };
    this.#codeUrl = new URL(`file://${encodeURI(`${dir}/`)}`).href;
    this.#heapMb = options.defaultHeapMb ?? defaultHeapMb();
  }

  /**
   * Starts a sandbox with no permissions ahead of the first task, the most
   * common kind (a sandbox process takes some 50 ms to start, more on a
   * busy machine).
   */
  warm(): void {
    const key = `${JSON.stringify(DEFAULT_PERMISSIONS)}\0${this.#heapMb}`;
    if (this.#spares.get(key)?.length || this.#closed) return;
    try {
      this.#spares.set(key, [
        this.#spawn("deno", DEFAULT_PERMISSIONS, this.#heapMb),
      ]);
    } catch {
      // The first task reports why sandboxes cannot start.
    }
  }

  /** Reports one output line of a sandbox, and acknowledges it once sent. */
  #logLine(
    sandbox: Sandbox,
    task: { id: number } | undefined,
    m: { s: "stdout" | "stderr"; l: string; id?: unknown },
  ): void {
    const cost = lineCost(m.l);
    const ack = () => {
      if (!sandbox.ended) {
        sandbox.port.postMessage({ t: "logack", n: cost });
      }
    };
    // A line may come after its task ended (a marker of lines dropped):
    // it keeps its task's id if this sandbox ran that task.
    const id = task?.id ??
      (typeof m.id === "number" && sandbox.recent.includes(m.id)
        ? m.id
        : undefined);
    let sent: void | Promise<void> = undefined;
    try {
      sent = this.#options.log(id, m.s, m.l);
    } finally {
      if (sent) sent.then(ack, ack);
      else ack();
    }
  }

  /** Takes a spare into use: the output it held is its own from now on. */
  #adopt(sandbox: Sandbox): Sandbox {
    const held = sandbox.held;
    sandbox.held = undefined;
    for (const line of held ?? []) this.#logLine(sandbox, undefined, line);
    return sandbox;
  }

  /**
   * Whether a compute's tasks go to a warm shared sandbox, which queues what
   * it is sent beyond {@linkcode SandboxManager.concurrency}: the worker may
   * send it tasks ahead.
   */
  queues(module: string, key: string): boolean {
    const spec = this.#specs.get(`${module}\0${key}`) ?? DEFAULT_SPEC;
    return spec.kind === "deno" && spec.isolation === "shared";
  }

  /**
   * What `sky.instanceInfo()` returns in sandboxes: setting it reaches the
   * live sandboxes before any task sent after it, and the ones started later.
   */
  set instance(info: InstanceInfo) {
    this.#options.instance = info;
    for (const sandbox of this.#live) {
      if (sandbox.kind === "deno" && !sandbox.ended) {
        sandbox.port.postMessage({ t: "info", instance: info });
      }
    }
  }

  /** Records where a compute's tasks run (the `define` message). */
  define(module: string, key: string, spec: SandboxSpec): void {
    this.#specs.set(`${module}\0${key}`, spec);
  }

  /**
   * Runs a task in its compute's sandbox.
   *
   * @param id The task's id.
   * @param module The compute's module, relative to the code directory.
   * @param key The compute's key in it.
   * @param payload The encoded arguments (copied before it is sent on,
   *   unless it is the whole of its buffer, which is then transferred).
   * @param streams The arguments streamed in (index, and whether a
   *   `ReadableStream`), fed by {@linkcode SandboxManager.send}.
   * @param hooks Where a streamed result goes.
   * @param feed When the arguments are still arriving into `payload` (of
   *   a task with no streamed argument, whose messages would overtake
   *   them): a Deno sandbox is sent them as they come, and drops them if
   *   they are abandoned; other sandboxes once all have come.
   * @returns How the task ended. Never rejects.
   */
  run(
    id: number,
    module: string,
    key: string,
    payload: Uint8Array,
    streams?: [number, boolean][],
    hooks?: TaskStreamHooks,
    feed?: ArgumentFeed,
  ): Promise<TaskOutcome> {
    const specKey = `${module}\0${key}`;
    const spec = this.#specs.get(specKey) ?? DEFAULT_SPEC;
    let sandbox: Sandbox;
    try {
      if (this.#closed) throw new SandboxError("The worker is closing");
      if (spec.kind !== "deno" && streams?.length) {
        throw new SandboxError(
          "Cannot stream an argument to a WASM sandbox: it takes whole values only",
        );
      }
      sandbox = spec.kind === "deno"
        ? this.#denoSandbox(spec, module, key)
        : this.#wasmSandbox();
    } catch (error) {
      return Promise.resolve(failure(error));
    }
    sandbox.lastUsed = performance.now();
    this.#watch ??= setInterval(() => this.#check(), WATCH_MS);
    if (sandbox.kind === "wasm" && !sandbox.known.has(specKey)) {
      sandbox.known.add(specKey);
      sandbox.port.postMessage({ t: "spec", key: specKey, spec });
    }
    const taskKey = sandbox.kind === "wasm" ? specKey : key;
    return new Promise<TaskOutcome>((resolve) => {
      const task: PendingTask = {
        id,
        resolve,
        hooks,
        posted: false,
        early: [],
      };
      sandbox.tasks.set(id, task);
      this.#byTask.set(id, sandbox);
      const send = () => {
        if (!sandbox.tasks.has(id)) return;
        if (feed && !feed.done) {
          if (!feed.aborted) this.#feed(sandbox, task, taskKey, feed, send);
          return;
        }
        if (sandbox.kind === "deno" && payload.byteLength < INLINE_BYTES) {
          // Copied into the message's header, with the tasks sent beside it.
          this.#post(sandbox, [[id, taskKey, payload, streams], []]);
        } else {
          const buffer = payload.byteOffset === 0 &&
              payload.byteLength === payload.buffer.byteLength
            ? payload.buffer as ArrayBuffer
            : payload.slice().buffer;
          this.#post(sandbox, [[id, taskKey, buffer, streams], [buffer]]);
        }
        task.posted = true;
        for (const message of task.early.splice(0)) {
          this.#post(sandbox, message);
        }
        const limit = spec.kind === "js" || spec.kind === "wasm"
          ? spec.timeout
          : undefined;
        if (limit !== undefined) {
          task.timer = after(
            spec.kind === "js" ? limit + JS_GRACE_MS : limit,
            () => {
              this.#finish(
                sandbox,
                task,
                failure(
                  new SandboxError(
                    `The task ran past its time limit of ${limit} ms in the WASM sandbox`,
                  ),
                ),
              );
              this.#stop(sandbox, "a task ran past its time limit");
            },
          );
        }
      };
      // A sandbox that has loaded its module is sent the task at once.
      if (sandbox.loaded && !sandbox.ended) send();
      else {
        sandbox.ready.then(
          send,
          (outcome: TaskOutcome) => this.#finish(sandbox, task, outcome),
        );
      }
    });
  }

  /** Sends a task whose arguments are still arriving: see `run`'s `feed`. */
  #feed(
    sandbox: Sandbox,
    task: PendingTask,
    key: string,
    feed: ArgumentFeed,
    send: () => void,
  ): void {
    let out: OutgoingStream | undefined;
    if (sandbox.kind === "deno" && !sandbox.ended) {
      this.#flush(sandbox); // The tasks posted before it go first.
      const message = { t: "task", task: [task.id, key] };
      out = sandbox.port.postStream?.(message, feed.payload.length);
    }
    // Not whole yet (see `run`): `done` is called later, if ever.
    task.unfeed = passOn(feed, out, () => {
      task.unfeed = undefined;
      if (!out) send();
    });
    if (!out) return;
    task.posted = true;
    for (const message of task.early.splice(0)) this.#post(sandbox, message);
  }

  /**
   * Passes a stream message to a task's sandbox: items of a streamed
   * argument (their buffer is transferred), credit for its streamed result,
   * or leaving that result. Ignored once the task has ended.
   */
  send(message: TaskStreamMessage): void {
    const sandbox = this.#byTask.get(message.id);
    const task = sandbox?.tasks.get(message.id);
    if (!sandbox || !task || sandbox.kind !== "deno") return;
    const outgoing: Outgoing = [
      message,
      message.t === "in" && message.b ? [message.b] : [],
    ];
    if (task.posted) this.#post(sandbox, outgoing);
    else task.early.push(outgoing);
  }

  /**
   * Stops a task the client cancelled (or that ran past its timeout). Its
   * promise from {@linkcode run} is left pending: the worker has already
   * answered for it.
   */
  cancel(id: number): void {
    const sandbox = this.#byTask.get(id);
    if (!sandbox) return;
    const task = sandbox.tasks.get(id)!;
    task.timer?.();
    task.abandon?.();
    sandbox.tasks.delete(id);
    this.#byTask.delete(id);
    // Its arguments had not all come: the sandbox drops what it was sent of
    // them, and never starts it. A shared sandbox goes on as it was.
    if (task.unfeed?.() && !sandbox.exclusive) return;
    if (sandbox.exclusive || sandbox.tasks.size === 0) {
      this.#stop(sandbox, `task ${id} was cancelled`);
      return;
    }
    // Other tasks share it: stop it only when it does not answer (the
    // cancelled task is blocking it); else the task finishes unseen.
    const timer = setTimeout(
      () =>
        this.#stop(
          sandbox,
          `task ${id}, which shared its sandbox, was cancelled while blocking it`,
        ),
      ANSWER_MS,
    );
    const previous = sandbox.answered;
    sandbox.answered = (answered) => {
      previous?.(answered);
      if (answered === id) clearTimeout(timer);
    };
    // The task may still wait in the outbox: it goes first.
    this.#flush(sandbox);
    sandbox.port.postMessage({ t: "cancel", id });
  }

  /** Finds sandboxes that hang (see `watchdog.ts`); pauses when none runs tasks. */
  #check(): void {
    if (
      checkHangs(this.#live, (sandbox, reason) => this.#stop(sandbox, reason))
    ) {
      return;
    }
    clearInterval(this.#watch);
    this.#watch = undefined;
  }

  /**
   * Reads the memory of the live Deno sandboxes and kills each past its
   * limit; pauses when there are none.
   */
  #checkMemory(): void {
    let watched = false;
    for (const sandbox of this.#live) {
      if (sandbox.pid === undefined || sandbox.rssBase === undefined) continue;
      if (sandbox.stopping || sandbox.ended) continue;
      watched = true;
      const bytes = residentBytes(sandbox.pid);
      if (bytes === undefined) continue;
      if (bytes - sandbox.rssBase > sandbox.heapMb * 2 ** 20) {
        sandbox.oom = true;
        this.#stop(sandbox, "it ran out of memory");
      }
    }
    if (watched) return;
    clearInterval(this.#memoryWatch);
    this.#memoryWatch = undefined;
  }

  /** Stops every sandbox; resolves once their processes are reaped. */
  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watch);
    clearInterval(this.#memoryWatch);
    for (const sandbox of [...this.#live]) {
      this.#end(sandbox, "the worker is closing");
    }
    return this.#spawner.close();
  }

  #denoSandbox(
    spec: Extract<SandboxSpec, { kind: "deno" }>,
    module: string,
    compute: string,
  ): Sandbox {
    // What the spec comes to, worked out once per spec (not per task).
    let resolved = this.#resolved.get(spec);
    if (!resolved) {
      const permissions = resolvePaths(spec.permissions, this.#codeUrl);
      const heapMb = spec.memoryLimit === undefined
        ? this.#heapMb
        : Math.max(8, Math.ceil(spec.memoryLimit / 2 ** 20));
      resolved = {
        permissions,
        heapMb,
        spareKey: `${JSON.stringify(permissions)}\0${heapMb}`,
      };
      this.#resolved.set(spec, resolved);
    }
    const { permissions, heapMb, spareKey } = resolved;
    // A sandbox of its own for each compute: no compute shares globals
    // (patched built-ins) with another.
    const key = `${module}\0${compute}\0${spareKey}`;
    const exclusive = spec.isolation === "task";
    if (!exclusive) {
      const warm = this.#shared.get(key);
      if (warm && !warm.ended && !warm.stopping) return warm;
    }
    // A spare of these permissions, unless it has loaded another module.
    const spares = this.#spares.get(spareKey) ?? [];
    this.#spares.set(spareKey, spares);
    const at = spares.findIndex((spare) =>
      !spare.ended && !spare.stopping &&
      (spare.module === undefined || spare.module === module)
    );
    const sandbox = at >= 0
      ? this.#adopt(spares.splice(at, 1)[0])
      : this.#spawn("deno", permissions, heapMb);
    if (sandbox.module === undefined) this.#load(sandbox, module);
    // The next sandboxes of these permissions start now and load this
    // module, while this one works: the next compute of the module, or the
    // next fresh tasks, find them ready. Fresh tasks back to back take one
    // each, faster than one starts: they get more ahead.
    for (const spare of [...spares]) {
      if (spare.module !== undefined && spare.module !== module) {
        this.#stop(spare, "a spare for another module replaces it");
      }
    }
    const depth = exclusive ? FRESH_SPARES : 1;
    while (spares.length < depth) {
      const spare = this.#spawn("deno", permissions, heapMb);
      spare.held = [];
      this.#load(spare, module);
      spares.push(spare);
    }
    sandbox.exclusive = exclusive;
    sandbox.port.postMessage({
      t: "slots",
      n: exclusive ? 1 : this.concurrency,
    });
    if (!exclusive) {
      sandbox.key = key;
      this.#shared.set(key, sandbox);
      this.#evict();
    }
    return sandbox;
  }

  /** Tells a Deno sandbox which module to import. */
  #load(sandbox: Sandbox, module: string): void {
    sandbox.module = module;
    sandbox.port.postMessage({
      t: "load",
      module: new URL(module, this.#codeUrl).href,
    });
  }

  #wasmSandbox(): Sandbox {
    const idle = this.#idle.get("wasm") ?? [];
    this.#idle.set("wasm", idle);
    for (let sandbox = idle.pop(); sandbox; sandbox = idle.pop()) {
      if (!sandbox.ended && !sandbox.stopping) return sandbox;
    }
    const sandbox = this.#spawn("wasm", NO_PERMISSIONS, WASM_HEAP_MB);
    sandbox.key = "wasm";
    sandbox.exclusive = true;
    return sandbox;
  }

  /** Stops the least recently used idle shared sandbox when too many are warm. */
  #evict(): void {
    if (this.#shared.size <= MAX_WARM) return;
    let oldest: Sandbox | undefined;
    for (const sandbox of this.#shared.values()) {
      if (sandbox.tasks.size > 0) continue;
      if (!oldest || sandbox.lastUsed < oldest.lastUsed) oldest = sandbox;
    }
    if (oldest) this.#stop(oldest, "too many warm sandboxes");
  }

  /** Starts a sandbox and keeps it among the live ones. */
  #spawn(
    kind: "deno" | "wasm",
    permissions: Permissions,
    heapMb: number,
  ): Sandbox {
    const sandbox = startSandbox(kind, permissions, heapMb, {
      sid: this.#nextSid++,
      instance: this.#options.instance,
      codeDir: this.#options.codeDir,
      spawner: this.#spawner,
      message: (sandbox, message) => this.#message(sandbox, message),
      stream: (sandbox, message, total) =>
        this.#resultStream(sandbox, message, total),
      connected: (sandbox) => {
        // Its memory from here on counts against its limit.
        sandbox.rssBase = residentBytes(sandbox.pid!);
        this.#memoryWatch ??= setInterval(
          () => this.#checkMemory(),
          MEMORY_WATCH_MS,
        );
      },
      end: (sandbox, reason) => this.#end(sandbox, reason),
    });
    this.#live.add(sandbox);
    return sandbox;
  }

  /**
   * Sends a task (an array) or a stream message; those sent in one turn
   * share a message, in order.
   */
  #post(sandbox: Sandbox, outgoing: Outgoing): void {
    sandbox.outbox.push(outgoing);
    if (sandbox.outbox.length > 1) return;
    if (sandbox.tasks.size > 1) {
      // Other tasks are in hand: at the end of the event loop's turn, so
      // that the tasks the results of one read set going (each a few
      // promise steps later) share one write.
      setImmediate(() => this.#flush(sandbox));
    } else {
      // Its only task: sent now, the sandbox starting on it while this
      // process finishes its turn.
      this.#flush(sandbox);
    }
  }

  /** Sends what waits in a sandbox's outbox now (before a message about it). */
  #flush(sandbox: Sandbox): void {
    const sent = sandbox.outbox;
    if (sent.length === 0) return;
    sandbox.outbox = [];
    if (sandbox.ended) return;
    const buffers = sent.flatMap((o) => o[1]);
    sandbox.port.postMessage(
      sent.length === 1
        ? sent[0][0]
        : { t: "tasks", tasks: sent.map((o) => o[0]) },
      buffers,
    );
  }

  /** Handles a message from a sandbox: untrusted, so checked. */
  #message(sandbox: Sandbox, message: unknown): void {
    if (typeof message !== "object" || message === null) return;
    const m = message as Record<string, unknown>;
    if (m.t === "batch" && Array.isArray(m.messages)) {
      for (const one of m.messages) this.#message(sandbox, one);
      return;
    }
    const task = typeof m.id === "number" ? sandbox.tasks.get(m.id) : undefined;
    switch (m.t) {
      case "ready":
        sandbox.loaded = true;
        sandbox.opened();
        return;
      case "fail":
        if (m.b instanceof ArrayBuffer) {
          sandbox.failed({ t: "err", b: new Uint8Array(m.b) });
        }
        this.#stop(sandbox, "it could not load its module");
        return;
      case "ok":
      case "err":
        // A small outcome comes inside its message, a large one as a buffer.
        if (task && (m.b instanceof ArrayBuffer || m.b instanceof Uint8Array)) {
          this.#finish(sandbox, task, {
            t: m.t,
            b: m.b instanceof Uint8Array ? m.b : new Uint8Array(m.b),
          });
        }
        return;
      case "ser":
        if (task && typeof m.path === "string") {
          this.#finish(sandbox, task, {
            t: "ser",
            path: m.path,
            problem: String(m.problem),
          });
        }
        return;
      case "open":
        task?.hooks?.open();
        return;
      case "item":
        if (task?.hooks && m.b instanceof ArrayBuffer) {
          task.hooks.item(new Uint8Array(m.b));
        }
        return;
      case "credit":
        if (
          task?.hooks && typeof m.s === "number" && typeof m.n === "number"
        ) task.hooks.credit(m.s, m.n);
        return;
      case "log": {
        if (
          typeof m.l !== "string" || (m.s !== "stdout" && m.s !== "stderr")
        ) return;
        if (sandbox.held) {
          // A spare: its lines wait until a task takes it (their credit
          // with them, so a noisy module cannot fill this process).
          sandbox.held.push({ s: m.s, l: m.l, id: m.id });
          return;
        }
        this.#logLine(sandbox, task, { s: m.s, l: m.l, id: m.id });
        return;
      }
      case "alive":
        if (typeof m.id === "number") sandbox.answered?.(m.id);
        return;
      case "coll":
      case "collx":
        this.#options.collections?.fromSandbox(
          sandbox.sid,
          m,
          (reply, transfer) => {
            if (!sandbox.ended) sandbox.port.postMessage(reply, transfer);
          },
        );
        return;
      case "pong":
        sandbox.pinged = undefined;
        sandbox.stalls = 0;
        return;
      case "oom":
        sandbox.oom = true;
        this.#stop(sandbox, "it ran out of memory");
        return;
    }
  }

  /**
   * A task's large result starts to come in parts: sent on as it comes
   * when its hooks take it (`TaskStreamHooks.result`), else gathered and
   * given whole as the task's outcome.
   */
  #resultStream(
    sandbox: Sandbox,
    message: Record<string, unknown>,
    total: number,
  ): ByteSink | undefined {
    if (message.t !== "ok" || typeof message.id !== "number") return;
    const task = sandbox.tasks.get(message.id);
    const out = task?.hooks?.result?.(total);
    if (!task || !out) return;
    let open = true;
    const abort = () => {
      if (!open) return;
      open = false;
      out.abort();
    };
    task.abandon = abort;
    return {
      push(bytes) {
        if (open) out.push(bytes);
      },
      end: () => {
        if (!open) return;
        open = false;
        task.abandon = undefined;
        this.#finish(sandbox, task, { t: "sent" });
      },
      abort,
    };
  }

  #finish(sandbox: Sandbox, task: PendingTask, outcome: TaskOutcome): void {
    if (sandbox.tasks.get(task.id) !== task) return;
    // A result being sent on as it came is cut short, as are arguments.
    task.abandon?.();
    task.unfeed?.();
    task.timer?.();
    sandbox.tasks.delete(task.id);
    this.#byTask.delete(task.id);
    sandbox.recent.push(task.id);
    if (sandbox.recent.length > RECENT) sandbox.recent.shift();
    task.resolve(outcome);
    if (!sandbox.exclusive || sandbox.ended || sandbox.stopping) return;
    if (sandbox.kind === "wasm") this.#idle.get("wasm")!.push(sandbox);
    else this.#stop(sandbox, "its task is done");
  }

  /** Terminates a sandbox; it ends when its thread has stopped. */
  #stop(sandbox: Sandbox, reason: string): void {
    if (sandbox.stopping || sandbox.ended) return;
    sandbox.stopping = reason;
    this.#forget(sandbox);
    sandbox.kill();
    sandbox.stopTimer = setTimeout(() => {
      this.#options.fatal(
        `a sandbox did not stop within ${STOP_MS} ms of being terminated (${reason})`,
      );
    }, STOP_MS);
  }

  /** A sandbox's thread has ended: fails what it was running. */
  #end(sandbox: Sandbox, reason: string): void {
    if (sandbox.ended) return;
    sandbox.ended = reason;
    clearTimeout(sandbox.stopTimer);
    this.#options.collections?.sandboxEnded(sandbox.sid);
    this.#forget(sandbox);
    this.#live.delete(sandbox);
    sandbox.dispose();
    const why = sandbox.stopping
      ? `it was stopped because ${sandbox.stopping}`
      : reason;
    sandbox.failed(
      failure(
        sandbox.oom
          ? outOfMemory(sandbox.heapMb, true)
          : new SandboxError(`The sandbox could not start: ${why}`),
      ),
    );
    for (const task of [...sandbox.tasks.values()]) {
      this.#finish(
        sandbox,
        task,
        failure(
          sandbox.oom
            ? outOfMemory(sandbox.heapMb, !sandbox.loaded)
            : new SandboxError(
              `The sandbox running this task stopped: ${why}. It is replaced for the next task.`,
            ),
        ),
      );
    }
  }

  #forget(sandbox: Sandbox): void {
    if (this.#shared.get(sandbox.key) === sandbox) {
      this.#shared.delete(sandbox.key);
    }
    for (const spares of this.#spares.values()) {
      const at = spares.indexOf(sandbox);
      if (at >= 0) spares.splice(at, 1);
    }
    const idle = this.#idle.get(sandbox.key);
    const at = idle?.indexOf(sandbox) ?? -1;
    if (at >= 0) idle!.splice(at, 1);
  }
}

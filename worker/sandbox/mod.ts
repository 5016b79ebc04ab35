/**
 * Sandboxes, seen from the worker process: where each task runs.
 *
 * The worker process holds every permission, so that it can grant them; it
 * runs no user code. Each task runs in a sandbox:
 *
 * - A **Deno sandbox** holds exactly its compute's permissions. It is a Node
 *   worker thread started by a *sandbox host*, a Deno Web Worker created with
 *   those permissions (`--unstable-worker-options`), from which the thread
 *   inherits them (and shares them: so each host starts one sandbox). A Web
 *   Worker alone would do for the permissions, but Deno
 *   cannot stop a Web Worker in a busy loop (`terminate()` only ends its
 *   event loop) nor bound its heap (running out of memory aborts the whole
 *   process); a worker thread can be given a heap limit, and one that holds
 *   a Web Lock is interrupted when terminated. The sandbox imports its
 *   compute's module while it may still read the code (and the library), then
 *   drops that access before its first task. Tasks of one module and one
 *   permission set share a warm sandbox (`isolation: "shared"`), or each gets
 *   a fresh one (`isolation: "task"`, with one started ahead).
 * - A **WASM sandbox** holds no permission at all and runs QuickJS compiled
 *   to WebAssembly, or raw WebAssembly modules, one task at a time.
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
 * A sandbox that reaches its heap limit fails its tasks with a
 * `SandboxError` whose `code` is {@linkcode SANDBOX_OUT_OF_MEMORY} (the
 * client names the compute and its `memoryLimit`). Deno shows it one of two
 * ways: it ends the thread (`ERR_WORKER_OUT_OF_MEMORY`) when the limit is
 * reached in code the event loop called (a timer, an immediate: tasks start
 * from one), or it interrupts the code running in a promise job and doubles
 * the limit, leaving that task unsettled for ever (or rejected with `null`);
 * the sandbox watches its limit while it runs tasks and says `oom`. Reached
 * inside a message handler, the thread just waits: one running tasks that
 * neither answers a ping nor uses the CPU for ten seconds is taken for that,
 * and stopped.
 *
 * Tasks and results cross between the worker process and a sandbox as
 * transferred `ArrayBuffer`s of encoded values (one copy, no structured
 * clone of decoded values), the ones of one turn in one message; a warm
 * shared sandbox may be sent tasks ahead of its slots and runs them in turn.
 *
 * @module
 */
import { encode, toWireError } from "../../src/wire/codec.ts";
import type { InstanceInfo } from "../../src/instance.ts";
import { lineCost } from "../../src/wire/output.ts";
import {
  SANDBOX_OUT_OF_MEMORY,
  type SandboxSpec,
} from "../../src/wire/messages.ts";
import { after } from "../../src/_timers.ts";

/** How a task ended: its encoded result, its encoded error, or an unsendable result. */
export type TaskOutcome =
  | { t: "ok"; b: Uint8Array }
  | { t: "err"; b: Uint8Array }
  | { t: "ser"; path: string; problem: string };

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
   * The heap limit of a Deno sandbox whose compute sets no `memoryLimit`, in
   * MiB.
   * @default half the machine's memory, at most 4096
   */
  defaultHeapMb?: number;
}

/** A sandbox failed, or a task ran past a sandbox limit. */
export class SandboxError extends Error {
  /** @param message What happened. */
  constructor(message: string) {
    super(message);
    this.name = "SandboxError";
  }
}

/**
 * The error of the tasks of a sandbox that ran out of memory: a
 * {@linkcode SandboxError} with `code` {@linkcode SANDBOX_OUT_OF_MEMORY} and
 * `heapLimitMb`, which the client turns into a message naming the compute.
 */
function outOfMemory(heapMb: number, loading: boolean): SandboxError {
  return Object.assign(
    new SandboxError(
      `The sandbox ${
        loading ? "loading this task's module" : "running this task"
      } ran out of memory: its heap went past its limit of ${heapMb} MiB. It was stopped, and is replaced for the next task.`,
    ),
    { code: SANDBOX_OUT_OF_MEMORY, heapLimitMb: heapMb },
  );
}

type Permissions = Extract<SandboxSpec, { kind: "deno" }>["permissions"];

const NO_PERMISSIONS: Permissions = {
  read: false,
  write: false,
  net: false,
  env: false,
  run: false,
  ffi: false,
  sys: false,
  import: false,
};

/**
 * What a compute that sets no permission runs with (the client's
 * `DEFAULT_PERMISSIONS`): the warm spare sandbox holds these.
 */
const DEFAULT_PERMISSIONS: Permissions = {
  ...NO_PERMISSIONS,
  sys: ["hostname"],
};

/** What a compute that was never defined runs with. */
const DEFAULT_SPEC: SandboxSpec = {
  kind: "deno",
  permissions: NO_PERMISSIONS,
  isolation: "shared",
};

/** Hosts Deno imports remote modules from by default; granted for loading only. */
const DEFAULT_IMPORT_HOSTS = [
  "deno.land:443",
  "jsr.io:443",
  "esm.sh:443",
  "cdn.jsdelivr.net:443",
  "raw.githubusercontent.com:443",
  "gist.githubusercontent.com:443",
  // Those of the remote modules shipped (vendored) with the code.
  ...(envOf("SKYWARD_IMPORT_HOSTS") ?? "").split(",").filter(Boolean),
];

function envOf(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const WASM_HEAP_MB = 256;
/** How long a sandbox may take to stop once terminated. */
const STOP_MS = 5_000;
/** How long a sandbox shared with other tasks has to answer a cancel. */
const ANSWER_MS = 250;
/** How long past its time limit a QuickJS call may run before its sandbox is terminated. */
const JS_GRACE_MS = 1_000;
/** How often sandboxes running tasks are checked for a hang. */
const WATCH_MS = 1_000;
/**
 * Checks in a row without an answer or CPU use after which a sandbox is taken
 * for hung. Generous: on a loaded machine an idle sandbox (a task awaiting a
 * timer or a socket) has been seen to take over half a second to answer, and
 * a sandbox stopped by mistake fails a task that was doing nothing wrong.
 */
const STALLS = 10;
/** Ended tasks per sandbox whose late output lines keep their task's id. */
const RECENT = 64;
/** Warm shared sandboxes kept; past this the least recently used idle one is stopped. */
const MAX_WARM = 32;

function filePath(url: URL): string {
  return decodeURIComponent(url.pathname);
}

/**
 * A sandbox's entry for a Node worker thread: its file, or when the library
 * was imported from a URL (and is vendored with the code), a `data:` module
 * importing that URL.
 */
function entryOf(name: string): string {
  const url = new URL(name, import.meta.url);
  return url.protocol === "file:"
    ? filePath(url)
    : `data:application/javascript,${
      encodeURIComponent(`import ${JSON.stringify(url.href)};`)
    }`;
}

const ENTRY = {
  deno: entryOf("./deno_entry.ts"),
  wasm: entryOf("./wasm_entry.ts"),
};
const HOST = new URL("./deno_host.ts", import.meta.url);
/** The library's modules a sandbox loads: its entry and what it imports. */
const LIBRARY = new URL(import.meta.url).protocol === "file:"
  ? [
    filePath(new URL("../", import.meta.url)).replace(/\/$/, ""),
    filePath(new URL("../../src", import.meta.url)),
  ]
  : [];

/**
 * Names the sandbox entries with literal imports, so that the library
 * bundle shipped to nodes (the module graph of `worker/main.ts`) holds them
 * and their dependencies. Never called: sandboxes load them as threads.
 */
export const sandboxEntries = [
  () => import("./deno_entry.ts"),
  () => import("./wasm_entry.ts"),
  () => import("./deno_host.ts"),
];

/** What a task that streams is told, besides how it ended. */
export interface TaskStreamHooks {
  /** Its result is a stream: `item` calls follow, then its outcome. */
  open(): void;
  /** A batch of its result's items (an encoded array). */
  item(batch: Uint8Array): void;
  /** It took `bytes` more of its streamed argument `arg`. */
  credit(arg: number, bytes: number): void;
}

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

type Outgoing = [unknown, ArrayBuffer[]];

interface PendingTask {
  id: number;
  resolve(outcome: TaskOutcome): void;
  /** Cancels its time limit's timer. */
  timer?: () => void;
  hooks?: TaskStreamHooks;
  /** Whether it has been sent to its sandbox; stream messages wait until then. */
  posted: boolean;
  early: Outgoing[];
}

interface Host {
  worker: Worker;
  revoke: Deno.PermissionDescriptor[];
}

interface Sandbox {
  sid: number;
  kind: "deno" | "wasm";
  /** Its place in the warm maps (`""` for a sandbox of one task). */
  key: string;
  host: Host;
  port: MessagePort;
  ready: Promise<void>;
  tasks: Map<number, PendingTask>;
  /** Runs one task at a time, then is given back (WASM) or stopped (`isolation: "task"`). */
  exclusive: boolean;
  /** The compute specs it has been sent (WASM). */
  known: Set<string>;
  /** Tasks and stream messages to send at the end of this turn, in one message. */
  outbox: Outgoing[];
  lastUsed: number;
  /** Why it is being stopped, once it is. */
  stopping?: string;
  ended?: string;
  stopTimer?: ReturnType<typeof setTimeout>;
  answered?: (id: number) => void;
  /** The heap limit it was started with, in MiB. */
  heapMb: number;
  /** Set once it is known to have run out of memory. */
  oom?: boolean;
  /** Set once it has loaded its module. */
  loaded?: boolean;
  /** Its thread's `/proc/self/task/<tid>` directory, once known. */
  thread?: string;
  /** Set while a ping is unanswered: the thread's CPU ticks at the last check. */
  pinged?: number;
  /** Checks in a row that found it neither answering nor running. */
  stalls: number;
  /** The last tasks it ran, whose late output lines keep their id. */
  recent: number[];
  opened(): void;
  failed(outcome: TaskOutcome): void;
}

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
  #live = new Set<Sandbox>();
  #shared = new Map<string, Sandbox>();
  #idle = new Map<string, Sandbox[]>();
  /** Started sandboxes with no module yet, one per permission set in use. */
  #spares = new Map<string, Sandbox>();
  #byTask = new Map<number, Sandbox>();
  #nextSid = 1;
  #closed = false;
  #watch?: ReturnType<typeof setInterval>;
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
   * common kind (starting one takes about half a second).
   */
  warm(): void {
    const key = `${JSON.stringify(DEFAULT_PERMISSIONS)}\0${this.#heapMb}`;
    if (this.#spares.has(key) || this.#closed) return;
    try {
      this.#spares.set(
        key,
        this.#spawn("deno", DEFAULT_PERMISSIONS, this.#heapMb),
      );
    } catch {
      // The first task reports why sandboxes cannot start.
    }
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
   * @returns How the task ended. Never rejects.
   */
  run(
    id: number,
    module: string,
    key: string,
    payload: Uint8Array,
    streams?: [number, boolean][],
    hooks?: TaskStreamHooks,
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
        ? this.#denoSandbox(spec, module)
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
      sandbox.ready.then(() => {
        if (!sandbox.tasks.has(id)) return;
        const buffer = payload.byteOffset === 0 &&
            payload.byteLength === payload.buffer.byteLength
          ? payload.buffer as ArrayBuffer
          : payload.slice().buffer;
        this.#post(sandbox, [[id, taskKey, buffer, streams], [buffer]]);
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
      }, (outcome: TaskOutcome) => this.#finish(sandbox, task, outcome));
    });
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
    sandbox.tasks.delete(id);
    this.#byTask.delete(id);
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
    sandbox.port.postMessage({ t: "cancel", id });
  }

  /**
   * Finds sandboxes that hang. Deno does not report a worker thread that
   * runs out of memory while it holds a lock (its thread waits for ever):
   * a sandbox running tasks that neither answers a ping nor uses the CPU
   * for {@linkcode STALLS} checks in a row is stopped (a busy one — a long
   * computation, a loop — is left to its task's timeout).
   */
  #check(): void {
    let busy = false;
    for (const sandbox of this.#live) {
      if (sandbox.tasks.size === 0 || sandbox.stopping) continue;
      busy = true;
      const ticks = cpuTicks(sandbox.thread);
      if (ticks === undefined) continue;
      if (sandbox.pinged === undefined) {
        sandbox.pinged = ticks;
        sandbox.port.postMessage({ t: "ping" });
        continue;
      }
      sandbox.stalls = ticks === sandbox.pinged ? sandbox.stalls + 1 : 0;
      sandbox.pinged = ticks;
      if (sandbox.stalls >= STALLS) {
        this.#stop(
          sandbox,
          `it stopped answering and running: most likely it ran out of memory (its heap limit is ${sandbox.heapMb} MiB)`,
        );
      }
    }
    if (!busy) {
      clearInterval(this.#watch);
      this.#watch = undefined;
    }
  }

  /** Stops every sandbox and host. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#watch);
    for (const sandbox of [...this.#live]) {
      this.#end(sandbox, "the worker is closing");
    }
  }

  #denoSandbox(
    spec: Extract<SandboxSpec, { kind: "deno" }>,
    module: string,
  ): Sandbox {
    const permissions = this.#resolve(spec.permissions);
    const heapMb = spec.memoryLimit === undefined
      ? this.#heapMb
      : Math.max(8, Math.ceil(spec.memoryLimit / 2 ** 20));
    const spareKey = `${JSON.stringify(permissions)}\0${heapMb}`;
    const key = `${module}\0${spareKey}`;
    const exclusive = spec.isolation === "task";
    if (!exclusive) {
      const warm = this.#shared.get(key);
      if (warm && !warm.ended && !warm.stopping) return warm;
    }
    let sandbox = this.#spares.get(spareKey);
    this.#spares.delete(spareKey);
    if (!sandbox || sandbox.ended || sandbox.stopping) {
      sandbox = this.#spawn("deno", permissions, heapMb);
    }
    // Start the next sandbox of these permissions now, while this one works.
    this.#spares.set(spareKey, this.#spawn("deno", permissions, heapMb));
    sandbox.exclusive = exclusive;
    sandbox.port.postMessage({
      t: "load",
      module: new URL(module, this.#codeUrl).href,
      concurrency: exclusive ? 1 : this.concurrency,
    });
    if (!exclusive) {
      sandbox.key = key;
      this.#shared.set(key, sandbox);
      this.#evict();
    }
    return sandbox;
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

  /** Resolves relative paths against the code directory. */
  #resolve(permissions: Permissions): Permissions {
    const out = { ...permissions };
    for (const name of ["read", "write", "ffi"] as const) {
      const grant = out[name];
      if (Array.isArray(grant)) {
        out[name] = grant.map((p) =>
          p.startsWith("/") ? p : filePath(new URL(p, this.#codeUrl))
        );
      }
    }
    return out;
  }

  /** Starts the Web Worker holding a sandbox's permissions, which starts the sandbox. */
  #host(permissions: Permissions, kind: "deno" | "wasm"): Host {
    // Without the flag, Deno exits the whole process when a worker is
    // given permissions: check first.
    if (!workerOptions()) {
      throw new SandboxError(
        "Cannot start a sandbox: the worker was started without --unstable-worker-options",
      );
    }
    const { options, revoke } = loadPermissions(
      permissions,
      kind === "deno" ? [...LIBRARY, this.#options.codeDir] : LIBRARY,
      kind === "deno",
    );
    let worker: Worker;
    try {
      worker = new Worker(HOST, {
        type: "module",
        name: "skyward-sandbox-host",
        deno: { permissions: options },
      } as WorkerOptions);
    } catch (error) {
      throw new SandboxError(
        `Cannot start a sandbox: ${
          error instanceof Error ? error.message : String(error)
        } (the worker must run with --unstable-worker-options)`,
      );
    }
    return { worker, revoke };
  }

  /**
   * Starts a sandbox. A Deno sandbox waits for `{ t: "load", module }`
   * before it imports its module and becomes ready.
   */
  #spawn(
    kind: "deno" | "wasm",
    permissions: Permissions,
    heapMb: number,
  ): Sandbox {
    const host = this.#host(permissions, kind);
    const { port1, port2 } = new MessageChannel();
    let opened!: () => void;
    let failed!: (outcome: TaskOutcome) => void;
    const ready = new Promise<void>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    ready.catch(() => {});
    const sandbox: Sandbox = {
      sid: this.#nextSid++,
      kind,
      key: "",
      host,
      port: port1,
      ready,
      tasks: new Map(),
      exclusive: false,
      heapMb,
      stalls: 0,
      recent: [],
      known: new Set(),
      outbox: [],
      lastUsed: performance.now(),
      opened,
      failed,
    };
    this.#live.add(sandbox);
    port1.onmessage = (event: MessageEvent) =>
      this.#message(sandbox, event.data);
    host.worker.onmessage = (event: MessageEvent) => {
      const message = event.data as {
        t: string;
        code: number;
        error?: string;
        thread?: number;
        oom?: boolean;
      };
      if (message?.t === "thread") sandbox.thread = threadDir(message.thread);
      if (message?.t !== "exit") return;
      if (message.oom) sandbox.oom = true;
      this.#end(
        sandbox,
        message.error ?? `it exited with code ${message.code}`,
      );
    };
    host.worker.onerror = (event: ErrorEvent) => {
      // An error in a host must not end the worker process.
      event.preventDefault();
      this.#end(sandbox, `its host failed: ${event.message}`);
    };
    host.worker.postMessage({
      t: "spawn",
      sid: sandbox.sid,
      entry: ENTRY[kind],
      data: {
        skyward: kind,
        instance: this.#options.instance,
        lock: `skyward-sandbox-${crypto.randomUUID()}`,
        revoke: host.revoke,
      },
      port: port2,
      heapMb,
    }, [port2]);
    return sandbox;
  }

  /**
   * Sends a task (an array) or a stream message; those sent in one turn
   * share a message, in order.
   */
  #post(sandbox: Sandbox, outgoing: Outgoing): void {
    sandbox.outbox.push(outgoing);
    if (sandbox.outbox.length > 1) return;
    queueMicrotask(() => {
      const sent = sandbox.outbox;
      sandbox.outbox = [];
      if (sandbox.ended) return;
      const buffers = sent.flatMap((o) => o[1]);
      sandbox.port.postMessage(
        sent.length === 1
          ? sent[0][0]
          : { t: "tasks", tasks: sent.map((o) => o[0]) },
        buffers,
      );
    });
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
        if (task && m.b instanceof ArrayBuffer) {
          this.#finish(sandbox, task, { t: m.t, b: new Uint8Array(m.b) });
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
        return;
      }
      case "alive":
        if (typeof m.id === "number") sandbox.answered?.(m.id);
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

  #finish(sandbox: Sandbox, task: PendingTask, outcome: TaskOutcome): void {
    if (sandbox.tasks.get(task.id) !== task) return;
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
    sandbox.host.worker.postMessage({ t: "kill", sid: sandbox.sid });
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
    this.#forget(sandbox);
    this.#live.delete(sandbox);
    sandbox.port.close();
    sandbox.host.worker.terminate();
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
    for (const [key, spare] of this.#spares) {
      if (spare === sandbox) this.#spares.delete(key);
    }
    const idle = this.#idle.get(sandbox.key);
    const at = idle?.indexOf(sandbox) ?? -1;
    if (at >= 0) idle!.splice(at, 1);
  }
}

function failure(error: unknown): TaskOutcome {
  return { t: "err", b: encode(toWireError(error), "error") };
}

function covers(grant: boolean | string[], path: string): boolean {
  if (grant === true) return true;
  if (grant === false) return false;
  return grant.some((p) =>
    path === p || path.startsWith(p.endsWith("/") ? p : `${p}/`)
  );
}

/**
 * The permissions of a sandbox host: the sandbox's own, plus read access to
 * the modules it loads and the hosts Deno imports remote modules from by
 * default, where the sandbox's own do not already give them. Those extras
 * are dropped by the sandbox before its first task (`revoke`).
 */
export function loadPermissions(
  permissions: Permissions,
  paths: string[],
  remote: boolean,
): {
  options: Deno.PermissionOptionsObject;
  revoke: Deno.PermissionDescriptor[];
} {
  const revoke: Deno.PermissionDescriptor[] = [];
  const read = permissions.read;
  const extraPaths = paths.filter((p) => !covers(read, p));
  for (const path of extraPaths) revoke.push({ name: "read", path });
  const imports = permissions.import;
  const extraHosts = remote && imports !== true
    ? DEFAULT_IMPORT_HOSTS.filter((h) =>
      !(imports || []).some((g) => g === h || `${g}:443` === h)
    )
    : [];
  for (const host of extraHosts) revoke.push({ name: "import", host });
  return {
    options: {
      ...permissions,
      read: extraPaths.length === 0
        ? read
        : [...(Array.isArray(read) ? read : []), ...extraPaths],
      import: extraHosts.length === 0
        ? imports
        : [...(Array.isArray(imports) ? imports : []), ...extraHosts],
    } as Deno.PermissionOptionsObject,
    revoke,
  };
}

/** The `/proc` directory of the thread of the Node worker with this id, if found. */
function threadDir(id: number | undefined): string | undefined {
  if (id === undefined) return undefined;
  try {
    for (const entry of Deno.readDirSync("/proc/self/task")) {
      const dir = `/proc/self/task/${entry.name}`;
      if (Deno.readTextFileSync(`${dir}/comm`).trim() === `worker-${id}`) {
        return dir;
      }
    }
  } catch {
    // Not Linux: hangs are left to timeouts.
  }
  return undefined;
}

/** CPU time a thread has used, in clock ticks. */
function cpuTicks(dir: string | undefined): number | undefined {
  if (!dir) return undefined;
  try {
    const stat = Deno.readTextFileSync(`${dir}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

let enabled: boolean | undefined;

/** Whether this process may give Web Workers permissions (`--unstable-worker-options`). */
function workerOptions(): boolean {
  if (enabled !== undefined) return enabled;
  let argv: string[];
  try {
    argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    return enabled = true; // Not Linux: assume so; Deno says otherwise.
  }
  if (
    argv.some((a) => a === "--unstable-worker-options" || a === "--unstable")
  ) {
    return enabled = true;
  }
  const at = argv.findIndex((a) => a === "--config" || a === "-c");
  const config = at >= 0
    ? argv[at + 1]
    : argv.find((a) => a.startsWith("--config="))?.slice(9);
  try {
    const unstable = config
      ? JSON.parse(Deno.readTextFileSync(config)).unstable
      : undefined;
    return enabled = Array.isArray(unstable) &&
      unstable.includes("worker-options");
  } catch {
    return enabled = false;
  }
}

function defaultHeapMb(): number {
  try {
    return Math.max(
      256,
      Math.min(4096, Math.floor(Deno.systemMemoryInfo().total / 2 / 2 ** 20)),
    );
  } catch {
    return 4096;
  }
}

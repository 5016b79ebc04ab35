/**
 * The worker: started on each node as `deno run worker/main.ts`, it speaks
 * the frame protocol over its stdin and stdout and runs each task in a
 * sandbox (see `sandbox.ts`) that imports the user's module from the shipped
 * code directory. The worker itself holds every permission, so that it can
 * grant them, and runs no user code.
 *
 * It opens no network port. Its environment carries:
 * - `SKYWARD_CODE_DIR`: the directory holding the shipped code;
 * - `SKYWARD_INSTANCE`: the node's `InstanceInfo` as JSON;
 * - `SKYWARD_DEADMAN`: the dead-man switch's settings as JSON (see
 *   `_deadman.ts`): heartbeat silence, grace, power-off command, hard TTL;
 * - `SKYWARD_UNSAFE_NO_SANDBOX=1`, for benchmarks only: run tasks in the
 *   worker itself, with all its permissions, as before sandboxes existed;
 * - `SKYWARD_MAX_MESSAGE_BYTES`, for tests only: a lower limit on the size
 *   of one message (a task's encoded result), to exercise what happens past
 *   the real one (4 GiB) without allocating it.
 *
 * Nothing a task does may end the worker: a result or an error that cannot
 * be sent fails its task, a message the worker cannot handle is reported
 * and the worker goes on, and task output is bounded (lines cut at
 * `MAX_LINE_CHARS`, and at most `LOG_BACKLOG` bytes of it waiting to be
 * written, the rest dropped and counted in a marker line).
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";
import { decode, encode, toWireError } from "../src/wire/codec.ts";
import { explainImport } from "./imports.ts";
import { lookupCompute } from "../src/compute.ts";
import {
  ProtocolError,
  SerializationError,
  TaskCancelledError,
} from "../src/errors.ts";
import {
  type InstanceInfo,
  instanceInfo,
  setInstanceInfo,
} from "../src/instance.ts";
import { FrameDecoder, PART_BYTES } from "../src/wire/frames.ts";
import { FrameWriter, type MessageStream } from "../src/wire/frame_writer.ts";
import {
  type ClientMessage,
  fastClientMessage,
  PROTOCOL_VERSION,
  type WorkerMessage,
} from "../src/wire/messages.ts";
import { isStreamable } from "../src/wire/stream.ts";
import { capLine, droppedLines, lineCost } from "../src/wire/output.ts";
import { deadManSettings, DeadManSwitch } from "./deadman.ts";
import { protocolStreams } from "./stdio.ts";
import { SandboxManager, type TaskStreamMessage } from "./sandbox/manager.ts";
import { CollectionRelay } from "./collections.ts";
import { COLLECTIONS_HOOK } from "../src/collections/_context.ts";
import type { TaskOutcome } from "./sandbox/outcome.ts";
import { ArgumentFeed } from "./sandbox/feed.ts";

// Taken before anything else runs: sandboxes must not reach the protocol.
const stdio = protocolStreams();
const out = new FrameWriter(stdio.writable, {
  maxMessageBytes: Number(Deno.env.get("SKYWARD_MAX_MESSAGE_BYTES")) ||
    undefined,
});
const sandboxed = Deno.env.get("SKYWARD_UNSAFE_NO_SANDBOX") !== "1";
const codeDir = Deno.env.get("SKYWARD_CODE_DIR") ?? Deno.cwd();
const codeUrl = new URL(
  `file://${encodeURI(codeDir.endsWith("/") ? codeDir : `${codeDir}/`)}`,
)
  .href;

const deadManConfig = deadManSettings();
const deadMan = deadManConfig &&
  new DeadManSwitch(
    deadManConfig,
    decodeURIComponent(new URL("../.skyward-contact", codeUrl).pathname),
    {
      async stop() {
        await sandboxes.close();
        await out.close();
      },
      say,
      exit: (code) => Deno.exit(code),
    },
  );

/**
 * Queues a message to the client. Never throws: a message that cannot be
 * sent fails its task (see {@linkcode undeliverable}).
 */
function send(header: WorkerMessage, payload?: Uint8Array): Promise<void> {
  if ("id" in header && header.id != null && spoiled.has(header.id)) {
    return Promise.resolve();
  }
  try {
    // While other tasks are in hand, a result may wait a moment to share a write.
    return out.send(header, payload, running > 1 || queue.length > 0);
  } catch (error) {
    undeliverable(header, payload, error);
    return Promise.resolve();
  }
}

/** Tasks failed because one of their messages could not be sent: the rest of theirs are dropped. */
const spoiled = new Set<number>();

/**
 * A message could not be sent (its payload is past the limit of one
 * message): its task fails with a `SerializationError` naming the size and
 * the limit, or, for an error too large to send, with a short error saying
 * so. A message of no task is reported on stderr.
 */
function undeliverable(
  header: WorkerMessage,
  payload: Uint8Array | undefined,
  error: unknown,
): void {
  const id = "id" in header && header.id != null ? header.id : undefined;
  const size = payload?.length ?? 0;
  const limit = out.maxMessageBytes;
  if (id === undefined || !["ok", "yield", "err"].includes(header.t)) {
    say(
      `skyward worker: could not send a '${header.t}' message: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
    return;
  }
  spoiled.add(id);
  if (header.t === "yield") {
    // Its generator would go on for nothing: return it.
    if (sandboxed) sandboxes.send({ t: "stop", id });
  }
  let problem: string;
  if (header.t === "err" && header.path === undefined) {
    const fallback = new Error(
      `The task failed, but its error is ${size} bytes once encoded, past the limit of ${limit} bytes for one message`,
    );
    out.send({ t: "err", id }, encode(toWireError(fallback), "error"));
    return;
  }
  problem =
    `is ${size} bytes once encoded, past the limit of ${limit} bytes for one message`;
  if (header.t === "yield") problem = `(a batch of yielded values) ${problem}`;
  try {
    out.send({
      t: "err",
      id,
      path: "result",
      problem: new SerializationError("result", problem).message,
    });
  } catch {
    // Nothing smaller can be said.
  }
}

/** Writes a line to the worker's stderr (the client reads it as node output). */
function say(line: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
  } catch {
    // Nobody is listening any more.
  }
}

/**
 * The most output, in bytes (see `lineCost`), waiting to be written to the
 * client; past it, lines are dropped and counted.
 */
const LOG_BACKLOG = 8 * 1024 * 1024;
let logBacklog = 0;
/** Lines dropped, by task (`-1` for the node's own). */
const droppedLog = new Map<number, number>();

/**
 * Sends a line of output, cut at `MAX_LINE_CHARS`, unless
 * {@linkcode LOG_BACKLOG} bytes are waiting already: then it is dropped and
 * counted, and a marker line says how many were once the backlog has
 * halved. Settles once the line is written (or dropped).
 */
function log(
  id: number | undefined,
  stream: "stdout" | "stderr",
  text: string,
): Promise<void> {
  const line = capLine(text);
  const cost = lineCost(line);
  if (logBacklog + cost > LOG_BACKLOG) {
    const key = id ?? -1;
    droppedLog.set(key, (droppedLog.get(key) ?? 0) + 1);
    return Promise.resolve();
  }
  logBacklog += cost;
  return send(
    id === undefined ? { t: "log", s: stream, l: line } : {
      t: "log",
      id,
      s: stream,
      l: line,
    },
  ).then(() => {
    logBacklog -= cost;
    if (droppedLog.size > 0 && logBacklog <= LOG_BACKLOG / 2) {
      const counts = [...droppedLog];
      droppedLog.clear();
      for (const [key, count] of counts) {
        log(key < 0 ? undefined : key, "stderr", droppedLines(count));
      }
    }
  });
}

// Tasks' console output goes back to the client as log frames; stdout itself
// carries the protocol and must not be written to by anything else.
const currentTask = new AsyncLocalStorage<number>();
function redirect(stream: "stdout" | "stderr") {
  return (...data: unknown[]) => {
    let text: string;
    try {
      text = format(...data);
    } catch (error) {
      text = `(output that could not be formatted: ${error})`;
    }
    const id = currentTask.getStore();
    for (const line of text.split("\n")) log(id, stream, line);
  };
}
console.log = console.info = console.debug = redirect("stdout");
console.warn = console.error = console.trace = redirect("stderr");

// The last resort: a failure no task owns is reported, not fatal. (Every
// path a task's messages take is guarded above; this keeps a slip there
// from ending every task of the node.)
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  say(
    `skyward worker: an unhandled rejection, ignored: ${
      describe(event.reason)
    }`,
  );
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  say(`skyward worker: an uncaught error, ignored: ${describe(event.error)}`);
});

function describe(error: unknown): string {
  try {
    return error instanceof Error
      ? (error.stack ?? error.message)
      : String(error);
  } catch {
    return "(an error that cannot be described)";
  }
}

(globalThis as Record<symbol, unknown>)[Symbol.for("skyward.worker")] = true;
const instance = Deno.env.get("SKYWARD_INSTANCE");
if (instance) {
  setInstanceInfo({
    ...(JSON.parse(instance) as InstanceInfo),
    hostname: Deno.hostname(),
  });
}

const collections = new CollectionRelay((header, payload) => {
  send(header, payload);
});
if (!sandboxed) {
  (globalThis as Record<symbol, unknown>)[COLLECTIONS_HOOK] = collections
    .caller(() => currentTask.getStore());
}

const sandboxes = new SandboxManager({
  codeDir,
  instance: instanceInfo(),
  log,
  collections,
  fatal(reason) {
    // The pool sees the worker exit and restarts it; stderr says why.
    say(`skyward worker: ${reason}; exiting`);
    shutdown(70);
  },
});
if (sandboxed) sandboxes.warm();
if (stdio.unprotected && sandboxed) {
  console.error(
    `skyward: the worker's standard streams stay reachable from sandboxes (${stdio.unprotected})`,
  );
}

const urls = new Map<string, string>();
function moduleUrl(path: string): string {
  let url = urls.get(path);
  if (!url) urls.set(path, url = new URL(path, codeUrl).href);
  return url;
}

const modules = new Map<string, Promise<unknown>>();
function load(path: string): Promise<unknown> {
  let loading = modules.get(path);
  if (!loading) {
    loading = import(moduleUrl(path));
    modules.set(path, loading);
  }
  return loading;
}

interface Task {
  id: number;
  module: string;
  key: string;
  payload: Uint8Array;
  cancelled: boolean;
  /** Whether its slot was given back (on cancellation, before it settled). */
  released: boolean;
  /** Its streamed arguments: index, and whether a `ReadableStream`. */
  streams?: [number, boolean][];
  /** Stream messages that came before it was handed to its sandbox. */
  early: TaskStreamMessage[];
  /**
   * Its argument, while it still arrives in parts (`payload` is then the
   * buffer it fills): the task is under way from its first part.
   */
  feed?: ArgumentFeed;
  started: boolean;
}

let concurrency = 1;
let running = 0;
const queue: Task[] = [];
const tasks = new Map<number, Task>();

/**
 * Tasks a warm shared sandbox may be sent beyond the worker's slots: it runs
 * them in turn (`concurrency` at a time), without a round trip to the worker
 * between two of them.
 */
const PIPELINE = 32;

function pump(): void {
  while (
    queue.length > 0 &&
    (running < concurrency ||
      sandboxed && running < concurrency + PIPELINE &&
        sandboxes.queues(queue[0].module, queue[0].key))
  ) {
    const task = queue.shift()!;
    running++;
    run(task).catch((error) => {
      // Whatever goes wrong with a task fails that task, not the worker.
      if (!task.cancelled) fail(task.id, error);
    }).finally(() => {
      tasks.delete(task.id);
      spoiled.delete(task.id);
      collections.taskEnded(task.id);
      release(task);
    });
  }
}

/** Gives a task's slot back, once. A cancelled task's slot is given back at once. */
function release(task: Task): void {
  if (task.released) return;
  task.released = true;
  running--;
  pump();
}

/** Reports a task's failure. Like results, it is queued, not awaited. */
function fail(id: number, error: unknown): void {
  if (error instanceof SerializationError) {
    send({ t: "err", id, path: error.path, problem: error.message });
    return;
  }
  let bytes: Uint8Array;
  try {
    const wire = toWireError(error);
    wire.message = explainImport(wire.message) ?? wire.message;
    bytes = encode(wire, "error");
  } catch {
    bytes = encode(
      toWireError(
        new Error("The task failed with an error that could not be encoded"),
      ),
      "error",
    );
  }
  send({ t: "err", id }, bytes);
}

async function run(task: Task): Promise<void> {
  if (task.cancelled) return;
  if (sandboxed) {
    // With streamed arguments, whose `in` messages would overtake the
    // parts of the others, the arguments go whole.
    if (task.feed && task.streams?.length) {
      if (!(await task.feed.whole()) || task.cancelled) return;
    }
    const id = task.id;
    const outcome = sandboxes.run(
      id,
      task.module,
      task.key,
      task.payload,
      task.streams,
      {
        open: () => send({ t: "open", id }),
        item: (batch) => send({ t: "yield", id }, batch),
        credit: (s, n) => send({ t: "credit", id, s, n }),
        result: (total) => resultStream(task, total),
      },
      task.feed,
    );
    task.started = true;
    for (const message of task.early.splice(0)) sandboxes.send(message);
    finish(task, await outcome);
    return;
  }
  await runHere(task);
}

/**
 * Sends a large result on to the client as it comes from the sandbox, part
 * by part, instead of once it has all come; `undefined` (it is gathered)
 * when it is small or past the limit of one message, or its task is
 * cancelled.
 */
function resultStream(task: Task, total: number): MessageStream | undefined {
  if (
    task.cancelled || spoiled.has(task.id) || total <= PART_BYTES ||
    total > out.maxMessageBytes
  ) return undefined;
  return out.stream({ t: "ok", id: task.id }, total);
}

/** Reports how a sandboxed task ended. */
function finish(task: Task, outcome: TaskOutcome): void {
  if (task.cancelled || outcome.t === "sent") return;
  if (outcome.t === "ser") {
    send({
      t: "err",
      id: task.id,
      path: outcome.path,
      problem: outcome.problem,
    });
  } else send({ t: outcome.t, id: task.id }, outcome.b);
}

/** Runs a task in the worker itself (`SKYWARD_UNSAFE_NO_SANDBOX=1`). */
async function runHere(task: Task): Promise<void> {
  if (task.feed && (!(await task.feed.whole()) || task.cancelled)) return;
  let value: unknown;
  try {
    await load(task.module);
    const compute = lookupCompute(moduleUrl(task.module), task.key);
    if (!compute) {
      throw new Error(
        `No compute '${task.key}' in ${task.module}: computes must be created at the top level ` +
          `of their module, unconditionally, so that importing the module re-creates them`,
      );
    }
    if (task.streams?.length) throw streamingNeedsSandbox();
    const args = decode(task.payload) as unknown[];
    value = await currentTask.run(task.id, () => compute.fn(...args));
    if (isStreamable(value)) throw streamingNeedsSandbox();
  } catch (error) {
    if (!task.cancelled) fail(task.id, error);
    return;
  }
  if (task.cancelled) return;
  let bytes: Uint8Array;
  try {
    bytes = encode(value, "result");
  } catch (error) {
    fail(task.id, error);
    return;
  }
  // Queued, not awaited: the slot is free for the next task at once.
  send({ t: "ok", id: task.id }, bytes);
}

function streamingNeedsSandbox(): Error {
  return new Error(
    "Cannot stream values to or from a worker that runs tasks without sandboxes " +
      "(SKYWARD_UNSAFE_NO_SANDBOX=1): streams flow through the sandboxes",
  );
}

/**
 * The payload as a buffer to transfer to a sandbox, and where in it: the
 * frame's own buffer when it has one, else a copy.
 */
function ownBytes(
  payload: Uint8Array,
  owned: boolean,
): { b: ArrayBuffer; o?: number; l?: number } {
  if (!owned) return { b: payload.slice().buffer };
  return {
    b: payload.buffer as ArrayBuffer,
    o: payload.byteOffset,
    l: payload.byteLength,
  };
}

/** Passes a stream message to its task, or keeps it until the task runs. */
function forward(message: TaskStreamMessage): void {
  // The client sends a task's messages after its call (in order, even
  // behind a call sent in parts): an unknown task has ended.
  const task = tasks.get(message.id);
  if (!task || !sandboxed) return;
  if (task.started) sandboxes.send(message);
  else task.early.push(message);
}

async function hello(
  message: Extract<ClientMessage, { t: "hello" }>,
): Promise<void> {
  const reply = {
    t: "hello" as const,
    v: PROTOCOL_VERSION,
    deno: Deno.version.deno,
    pid: Deno.pid,
    hostname: Deno.hostname(),
    codeUrl,
  };
  try {
    if (message.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        `The client speaks protocol version ${message.v} and this worker ${PROTOCOL_VERSION}: ` +
          `use the same version of the library on both`,
      );
    }
    if (message.deno !== Deno.version.deno) {
      throw new ProtocolError(
        `The client runs Deno ${message.deno} and this worker Deno ${Deno.version.deno}: ` +
          `the node must run the client's exact version`,
      );
    }
    const hashFile = new URL(".skyward-hash", codeUrl);
    const hash = await Deno.readTextFile(hashFile).catch(() => undefined);
    if (hash !== undefined && hash.trim() !== message.code) {
      throw new ProtocolError(
        `The shipped code in ${codeDir} has hash ${hash.trim()}, the client's ${message.code}`,
      );
    }
    concurrency = message.concurrency;
    sandboxes.concurrency = concurrency;
    // Sandboxes import the modules; only an unsandboxed worker does it here.
    if (!sandboxed) {
      for (const module of message.modules) await load(module);
    }
  } catch (error) {
    await send({ ...reply, failed: true }, encode(toWireError(error), "error"));
    return;
  }
  await deadMan?.greeted();
  await send(reply);
}

function handle(
  message: ClientMessage,
  payload: Uint8Array,
  owned = false,
): void | Promise<void> {
  switch (message.t) {
    case "hello":
      return hello(message);
    case "call":
      accept(message, payload);
      return;
    case "define":
      sandboxes.define(message.m, message.k, message.spec);
      return;
    case "cluster": {
      const { t: _, ...cluster } = message;
      setInstanceInfo({ ...instanceInfo(), ...cluster });
      sandboxes.instance = instanceInfo();
      return;
    }
    case "cancel": {
      const task = tasks.get(message.id);
      if (task) cancel(task);
      return;
    }
    case "in":
      return forward({
        t: "in",
        id: message.id,
        s: message.s,
        ...(payload.length > 0 ? ownBytes(payload, owned) : {}),
        end: message.end,
        err: message.err,
      });
    case "credit":
    case "stop":
      return forward(message);
    case "ping":
      return;
    case "collr":
      return collections.replies(message.c, message.err, payload);
    case "colls":
      return collections.open(
        message.m,
        decode(payload),
        message.holder,
        message.poolId,
      );
    case "bye":
      deadMan?.disarm();
      return shutdown(0);
  }
}

/** Takes a task in hand: queued to run (from its first part, if its call comes in parts). */
function accept(
  message: Extract<ClientMessage, { t: "call" }>,
  payload: Uint8Array,
  feed?: ArgumentFeed,
): void {
  const task: Task = {
    id: message.id,
    module: message.m,
    key: message.k,
    payload,
    cancelled: false,
    released: false,
    streams: message.streams,
    early: [],
    started: false,
    feed,
  };
  // An argument abandoned half-way (the client cancelled the task, or
  // went away) ends its task: nothing of it reaches a sandbox.
  feed?.listen(() => {
    if (feed.aborted) cancel(task);
  });
  tasks.set(task.id, task);
  queue.push(task);
  pump();
}

/** Drops a task (cancelled, or its argument abandoned) and says so to the client. */
function cancel(task: Task): void {
  if (task.cancelled || tasks.get(task.id) !== task) return;
  task.cancelled = true;
  const queued = queue.indexOf(task);
  if (queued >= 0) queue.splice(queued, 1);
  else {
    sandboxes.cancel(task.id);
    release(task);
  }
  tasks.delete(task.id);
  collections.taskEnded(task.id);
  fail(task.id, new TaskCancelledError(String(task.id)));
}

async function shutdown(code: number): Promise<never> {
  await sandboxes.close();
  await collections.close();
  await out.close();
  Deno.exit(code);
}

const decoder = new FrameDecoder(fastClientMessage);
// A call whose argument comes in parts is under way from its first part.
decoder.onstream = (header, payload) => {
  if (header.t !== "call" || tasks.has(header.id)) return undefined;
  const feed = new ArgumentFeed(payload);
  accept(header, payload, feed);
  return feed;
};
deadMan?.start();
try {
  for await (const chunk of stdio.readable) {
    deadMan?.heard();
    for (const frame of decoder.push(chunk)) {
      if (frame instanceof ProtocolError) {
        await send({ t: "perr", message: frame.message });
        continue;
      }
      try {
        await handle(frame.header, frame.payload, frame.owned);
      } catch (error) {
        // A message that could not be handled fails its task, if it has
        // one; the worker goes on with the next.
        await send({
          t: "perr",
          message: `Could not handle a '${frame.header.t}' message: ${
            error instanceof Error ? error.message : String(error)
          }`,
        });
        const id = (frame.header as { id?: number }).id;
        const task = id === undefined ? undefined : tasks.get(id);
        if (task && !task.cancelled) {
          task.cancelled = true;
          fail(task.id, error);
        }
      }
    }
  }
  // The calls whose argument was on its way end here.
  decoder.end();
  if (decoder.pending > 0) {
    await send({
      t: "perr",
      message:
        `The input ended inside a frame (${decoder.pending} bytes of it received)`,
    });
  }
} catch (error) {
  // A frame length past the limit: nothing after it can be trusted.
  await send({
    t: "perr",
    message: error instanceof Error ? error.message : String(error),
  });
  await shutdown(2);
}
// The input ended without a goodbye: the client is gone.
if (deadMan) await deadMan.inputEnded();
await shutdown(0);

/**
 * A Deno sandbox: a process of its own (`deno run deno_entry.ts <socket>
 * <token>`, see `process.ts`) holding exactly its compute's permissions. It
 * starts ahead of need: it connects to the worker process's socket, says its
 * token, and is sent `{ t: "init", instance, revoke }`. On `{ t: "load",
 * module }` it imports the compute's module from the shipped code (while it
 * still holds read access to it), drops that access and its access to the
 * socket, then runs the tasks the worker process sends it, `n` at a time
 * (as `{ t: "slots", n }` says; one until then), in the order they came.
 * It exits when its socket closes.
 *
 * Before any user code runs it takes away what would let state pass between
 * sandboxes with no permission: `caches` and `localStorage` (kept on disk
 * per node, not per sandbox) throw `NotCapable` unless the sandbox may write
 * anywhere (`write: true`), which reaches them anyway.
 *
 * Tasks arrive as `[id, key, payload, streams?]`, the payload an
 * `ArrayBuffer` of encoded arguments, or, for large arguments sent on as
 * they came to the worker, as `{ t: "task", task: [id, key], b }` once all
 * of `b` has come (one abandoned half-way never arrives: the channel drops
 * it); results go back as encoded bytes too
 * (see `common.ts`). A streamed argument is fed by `{ t: "in" }`
 * messages and grants credit with `{ t: "credit", id, s, n }`; a streamed
 * result goes back as `{ t: "open", id }`, then `{ t: "item", id, b }`
 * batches as `{ t: "credit", id, n }` allows, then its outcome; `{ t:
 * "stop", id }` returns its generator. `{ t: "info", instance }` replaces
 * what `sky.instanceInfo()` returns, for the tasks that follow it. `{ t:
 * "collr" }` answers a task's collection calls (see `collections.ts`).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { decode } from "../../src/wire/codec.ts";
import { fromWireError, type WireError } from "../../src/wire/wire_error.ts";
import { lookupCompute } from "../../src/compute.ts";
import { type InstanceInfo, setInstanceInfo } from "../../src/instance.ts";
import {
  Inbox,
  isStreamable,
  Pump,
  readableOf,
} from "../../src/wire/stream.ts";
import { Channel, type ChannelEvent } from "./channel.ts";
import {
  collectionReply,
  currentTask,
  dropLoadGrants,
  logAcknowledged,
  post,
  prepare,
  sendError,
  sendResult,
  wireError,
} from "./common.ts";

/** UTF-8 bytes of a string, bound before any user code can patch `TextEncoder`. */
const utf8 = TextEncoder.prototype.encode.bind(new TextEncoder());

/**
 * The most tasks a sandbox starts one after another as each ends, without
 * letting the event loop turn.
 */
const CHAIN = 256;

/** What the worker process sends a sandbox once it has connected. */
interface Init {
  t: "init";
  instance: InstanceInfo;
  revoke: Deno.PermissionDescriptor[];
}

/**
 * Takes away the storage that Deno keeps per node on disk, unless the
 * sandbox may write anywhere.
 */
function guardStorage(): void {
  if (Deno.permissions.querySync({ name: "write" }).state === "granted") {
    return;
  }
  for (const name of ["caches", "localStorage"]) {
    Object.defineProperty(globalThis, name, {
      configurable: false,
      enumerable: true,
      get() {
        throw new Deno.errors.NotCapable(
          `Requires write access to use ${name} in a sandbox: it is kept on disk, shared by every ` +
            `sandbox of the node, so grant the compute write: true, or keep the data in memory`,
        );
      },
    });
  }
}

/** The tasks to run at once, as a `{ t: "slots", n }` message says. */
function slots(n: unknown): number {
  return Math.max(1, Number(n) || 1);
}

/**
 * The messages of the worker process until the sandbox runs tasks: those
 * of one read arrive together, before the sandbox has moved on to its next
 * step, so they wait here to be taken in order. What needs no step (more
 * log credit, a collection call's answer, the slots, the instance info) is
 * handled as it comes.
 */
class Startup {
  #held: Record<string, unknown>[] = [];
  #wake?: () => void;
  concurrency = 1;
  /** The newest instance info sent, which replaces the start-up data's. */
  instance?: InstanceInfo;

  constructor(port: Channel) {
    port.onmessage = (event: ChannelEvent) => {
      const m = event.data as Record<string, unknown> | null;
      if (m?.t === "info") {
        this.instance = m.instance as InstanceInfo;
        setInstanceInfo(this.instance);
      } else if (m?.t === "logack") logAcknowledged(Number(m.n));
      else if (m?.t === "slots") this.concurrency = slots(m.n);
      else if (m?.t === "collr") collectionReply(m);
      else if (m !== null && typeof m === "object") {
        this.#held.push(m);
        this.#wake?.();
      }
    };
  }

  /** The next message held whose `t` is `t`; the ones before it are dropped. */
  async take(t: string): Promise<Record<string, unknown>> {
    for (;;) {
      const m = this.#held.shift();
      if (m?.t === t) return m;
      if (m) continue;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }

  /** The messages held, for the handler that takes over. */
  rest(): Record<string, unknown>[] {
    return this.#held.splice(0);
  }
}

async function main(socket: string, token: string): Promise<void> {
  const port = new Channel(
    await Deno.connect({ transport: "unix", path: socket }),
  );
  // The worker process is gone (or closed the channel): nothing left to
  // do. A channel that failed says why, on standard error, which the worker
  // process reads.
  port.onclose = (reason) => {
    if (reason) {
      Deno.stderr.writeSync(
        utf8(`error: the sandbox's channel to the worker failed: ${reason}\n`),
      );
    }
    Deno.exit(reason ? 70 : 0);
  };
  port.postMessage({ t: "hello", token });
  const startup = new Startup(port);
  const data = await startup.take("init") as unknown as Init;
  prepare({ port, instance: startup.instance ?? data.instance });
  guardStorage();
  let module = "";
  try {
    module = String((await startup.take("load")).module);
    await import(module);
    dropLoadGrants(data);
  } catch (error) {
    const buffer = wireError(error);
    port.postMessage({ t: "fail", b: buffer }, [buffer]);
    return;
  }
  let concurrency = startup.concurrency;
  interface Task {
    id: number;
    key: string;
    /** The encoded arguments: inside the message (small), or a buffer. */
    payload: ArrayBuffer | Uint8Array;
    inputs: [number, boolean, Inbox][];
  }
  const waiting: Task[] = [];
  const inputs = new Map<string, Inbox>();
  const pumps = new Map<number, Pump>();
  const stopped = new Set<number>();
  let running = 0;
  let scheduled = false;
  /** Tasks started one after another since the event loop last had a turn. */
  let chained = 0;
  const start = () => {
    scheduled = false;
    while (running < concurrency && waiting.length > 0) {
      const task = waiting.shift()!;
      running++;
      run(task).finally(() => {
        running--;
        // The next task waiting starts at once, its result joining the
        // same write; after CHAIN of them the event loop has a turn
        // (messages to read: a cancel, a ping).
        if (++chained < CHAIN) start();
        else next(true);
      });
    }
  };
  /**
   * Starts the tasks waiting once the messages of this read are all taken
   * (they are taken one after another, with no wait between them): a
   * `slots` or `cancel` among them counts. With `turn`, after the event
   * loop has had a turn (an immediate costs microseconds; a `setTimeout(0)`
   * about 2 ms).
   */
  const next = (turn = false) => {
    if (scheduled || waiting.length === 0) return;
    scheduled = true;
    if (turn) {
      setImmediate(() => {
        chained = 0;
        start();
      });
    } else queueMicrotask(start);
  };
  const accept = (
    [id, key, payload, streams]: [
      number,
      string,
      ArrayBuffer | Uint8Array,
      [number, boolean][]?,
    ],
  ) => {
    const taskInputs = (streams ?? []).map(([arg, readable]) => {
      const inbox = new Inbox((n) =>
        post(port, { t: "credit", id, s: arg, n })
      );
      inputs.set(`${id}:${arg}`, inbox);
      return [arg, readable, inbox] as [number, boolean, Inbox];
    });
    waiting.push({ id, key, payload, inputs: taskInputs });
  };
  const handle = (message: unknown) => {
    if (Array.isArray(message)) {
      accept(message as Parameters<typeof accept>[0]);
      return;
    }
    const m = message as Record<string, unknown> | null;
    const id = m?.id as number;
    switch (m?.t) {
      case "task": {
        const [taskId, key] = m.task as [number, string];
        accept([taskId, key, m.b as ArrayBuffer]);
        return;
      }
      case "in": {
        const inbox = inputs.get(`${id}:${m.s}`);
        if (!inbox) return;
        const bytes = m.b instanceof ArrayBuffer
          ? new Uint8Array(
            m.b,
            Number(m.o ?? 0),
            m.l === undefined ? undefined : Number(m.l),
          )
          : undefined;
        if (m.err && bytes) {
          inbox.fail(fromWireError(decode(bytes) as WireError));
        } else if (bytes) inbox.push(bytes);
        if (m.end) inbox.end();
        return;
      }
      case "credit":
        pumps.get(id)?.grant(Number(m.n));
        return;
      case "stop": {
        const pump = pumps.get(id);
        if (pump) pump.stop();
        else stopped.add(id);
        return;
      }
      case "cancel": {
        const at = waiting.findIndex((t) => t.id === id);
        if (at >= 0) waiting.splice(at, 1);
        // A streamed result nobody will take: return its generator, which
        // would otherwise wait for credit for ever, holding its slot.
        pumps.get(id)?.stop();
        port.postMessage({ t: "alive", id });
        return;
      }
      case "ping":
        port.postMessage({ t: "pong" });
        return;
      case "logack":
        logAcknowledged(Number(m.n));
        return;
      case "slots":
        concurrency = slots(m.n);
        return;
      case "collr":
        collectionReply(m);
        return;
      case "info":
        setInstanceInfo(m.instance as Parameters<typeof setInstanceInfo>[0]);
        return;
    }
  };
  port.onmessage = (event: ChannelEvent) => {
    const message = event.data as { t?: string; tasks?: unknown[] } | null;
    if (message?.t === "tasks" && Array.isArray(message.tasks)) {
      for (const one of message.tasks) handle(one);
    } else handle(message);
    next();
  };
  for (const held of startup.rest()) port.onmessage({ data: held });
  port.postMessage({ t: "ready" });

  async function run(task: Task): Promise<void> {
    const { id, key } = task;
    let value: unknown;
    try {
      try {
        const compute = lookupCompute(module, key);
        if (!compute) {
          throw new Error(
            `No compute '${key}' in ${module}: computes must be created at the top level ` +
              `of their module, unconditionally, so that importing the module re-creates them`,
          );
        }
        const args = decode(
          task.payload instanceof Uint8Array
            ? task.payload
            : new Uint8Array(task.payload),
        ) as unknown[];
        for (const [arg, readable, inbox] of task.inputs) {
          args[arg] = readable ? readableOf(inbox) : inbox;
        }
        value = await currentTask.run(id, () => compute.fn(...args));
      } catch (error) {
        sendError(port, id, error);
        return;
      }
      if (!isStreamable(value)) {
        sendResult(port, id, value);
        return;
      }
      post(port, { t: "open", id });
      const pump = new Pump(value, (batch) => {
        const buffer = batch.buffer as ArrayBuffer;
        post(port, { t: "item", id, b: buffer }, buffer);
      }, "yielded");
      pumps.set(id, pump);
      if (stopped.delete(id)) pump.stop();
      try {
        await currentTask.run(id, () => pump.run());
      } catch (error) {
        sendError(port, id, error);
        return;
      } finally {
        pumps.delete(id);
      }
      sendResult(port, id, null);
    } finally {
      stopped.delete(id);
      for (const [arg, , inbox] of task.inputs) {
        inputs.delete(`${id}:${arg}`);
        inbox.return();
      }
    }
  }
}

if (import.meta.main && Deno.args.length === 2) {
  await main(Deno.args[0], Deno.args[1]);
}

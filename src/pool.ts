/**
 * `ComputePool`: provisions nodes through a provider, ships the code, starts
 * a worker on each node and runs tasks there; closing it releases
 * everything, also when the program fails or is interrupted.
 *
 * @module
 */
import { z } from "zod";
import { type Accelerator, resolveAccelerator } from "./accelerators.ts";
import { buildBundle, type Bundle, bundlePath } from "./bundle.ts";
import { decode, encode } from "./codec.ts";
import {
  type Compute,
  computeModules,
  type Dispatchable,
  type Group,
  isGroup,
  isPending,
  onWorker,
  type Pending,
} from "./compute.ts";
import {
  type ConsoleSink,
  createConsole,
  defaultConsoleMode,
} from "./console.ts";
import {
  ConfigError,
  NodeLostError,
  PoolClosedError,
  ProvisioningError,
  TaskCancelledError,
  TaskTimeoutError,
} from "./errors.ts";
import { bootstrap, type BootstrapPlan, libraryBundle } from "./bootstrap.ts";
import {
  after,
  type DeadManSwitchOptions,
  deadManSwitchSchema,
  Heartbeat,
  workerDeadManSettings,
} from "./heartbeat.ts";
import type { BootstrapPhaseName, EventInit, PoolEvent } from "./events.ts";
import { Image, type ResolvedImage } from "./image.ts";
import type { InstanceInfo } from "./instance.ts";
import { logger } from "./log.ts";
import { NodeSession } from "./node.ts";
import type { SandboxSpec } from "./protocol.ts";
import { sandboxSpecOf } from "./sandbox.ts";
import type { ClusterSpec, Endpoint, Instance, Provider } from "./provider.ts";
import { SshConnection } from "./ssh.ts";
import { SshHost } from "./ssh_host.ts";
import { retrying, track, untrack } from "./teardown.ts";
import { type Host, LocalHost } from "./transport.ts";

const log = logger("pool");

/** How many nodes a pool has. */
export interface NodesOptions {
  /** How many nodes to launch. */
  desired: number;
  /**
   * How many must be ready before work starts; the rest join as they come.
   * @default desired
   */
  min?: number;
}

/** Options of {@linkcode ComputePool.start}. */
export interface PoolOptions {
  /** Where the nodes come from: `sky.Local()`, `sky.SSH(...)`, a cloud. */
  provider: Provider<any>;
  /**
   * How many nodes: a count, or `{ desired, min }`.
   * @default 1
   */
  nodes?: number | NodesOptions;
  /**
   * The allocation strategy, for providers that have spot machines.
   * @default "spot-if-available"
   */
  allocation?: "spot" | "on-demand" | "spot-if-available" | "cheapest";
  /** Upper bound on the price of one machine, in dollars per hour. */
  maxHourlyCost?: number;
  /**
   * The accelerators each node needs: `sky.accelerators.T4()`, or a model
   * name such as `"H100:8"`. Providers without accelerators refuse it.
   */
  accelerator?: Accelerator | string;
  /** Least vCPUs per node. */
  vcpus?: number;
  /** Least memory per node, in GiB. */
  memoryGb?: number;
  /** Size of each node's root disk, in GiB, where the provider sets it. */
  diskGb?: number;
  /**
   * The nodes' CPU architecture, where the provider has several.
   * @default "x86_64" on clouds
   */
  architecture?: "x86_64" | "arm64";
  /** The region to launch in, where the provider has regions; overrides the provider's own. */
  region?: string;
  /** What the nodes run the code with; see `sky.Image`. */
  image?: ResolvedImage;
  /** The worker on each node. */
  worker?: {
    /**
     * Tasks a node runs at once.
     * @default 1
     */
    concurrency?: number;
    /**
     * Tasks sent to a node ahead of a free slot, to hide the round trip.
     * Used only while the node's tasks are short (under a millisecond
     * apart); a node running longer tasks gets one task per slot.
     * @default 32
     */
    prefetch?: number;
  };
  /**
   * How long nodes may take to become ready, in milliseconds.
   * @default 600_000
   */
  provisionTimeout?: number;
  /**
   * How many times a task is sent again when its node was lost while it ran
   * (the worker died or the connection dropped). A task that throws is never
   * sent again.
   * @default 3
   */
  retryOnInterruption?: number;
  /**
   * Timeout of tasks whose compute and call set none, in milliseconds.
   * @default no limit
   */
  taskTimeout?: number;
  /**
   * What the pool prints: `"log"`, one line per event on stderr; `"rich"`, a
   * live view on a terminal; `"silent"`, nothing.
   * @default "rich" on a terminal, else "log"
   */
  console?: "rich" | "log" | "silent";
  /** Called with every event, from the first. */
  onEvent?: (event: PoolEvent) => void;
  /**
   * How workers notice that this client is gone (killed, lost, cut off) and
   * stop — powering their machines off after a grace period on clouds — and
   * the pool's hard time to live. See {@linkcode DeadManSwitchOptions}.
   * @default heartbeat every 5 s, 6 missed, 5 min grace, no TTL
   */
  deadManSwitch?: DeadManSwitchOptions;
}

/** Options of a single dispatch. */
export interface RunOptions {
  /** Cancels the task(s) when aborted. */
  signal?: AbortSignal;
  /**
   * Runs the task(s) on this node only (its index, 0 being the head).
   * @default any node, round robin
   */
  node?: number;
}

const positiveInt = z.number().int().positive();
const optionsSchema = z.object({
  provider: z.custom<Provider>(
    (p) =>
      typeof p === "object" && p !== null &&
      ["offers", "prepare", "provision", "getInstance", "terminate", "teardown"]
        .every((m) =>
          typeof (p as unknown as Record<string, unknown>)[m] === "function"
        ),
    "must be a provider, such as sky.Local()",
  ),
  nodes: z.union([
    positiveInt,
    z.object({ desired: positiveInt, min: positiveInt.optional() }).strict()
      .refine(
        (n) => (n.min ?? n.desired) <= n.desired,
        "min must not exceed desired",
      ),
  ]).default(1),
  allocation: z.enum(["spot", "on-demand", "spot-if-available", "cheapest"])
    .default(
      "spot-if-available",
    ),
  maxHourlyCost: z.number().positive().optional(),
  accelerator: z.unknown().optional().transform((value, ctx) => {
    try {
      return resolveAccelerator(value);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
      return z.NEVER;
    }
  }),
  vcpus: positiveInt.optional(),
  memoryGb: z.number().positive().optional(),
  diskGb: positiveInt.optional(),
  architecture: z.enum(["x86_64", "arm64"]).optional(),
  region: z.string().min(1).optional(),
  image: z.custom<ResolvedImage>(
    (i) =>
      typeof i === "object" && i !== null &&
      (i as { kind?: string }).kind === "image",
    "must be made with sky.Image(...)",
  ).optional(),
  worker: z.object({
    concurrency: positiveInt.default(1),
    prefetch: z.number().int().nonnegative().default(32),
  }).strict().default({ concurrency: 1, prefetch: 32 }),
  provisionTimeout: positiveInt.default(600_000),
  retryOnInterruption: z.number().int().nonnegative().default(3),
  taskTimeout: positiveInt.optional(),
  console: z.enum(["rich", "log", "silent"]).optional(),
  onEvent: z.custom<(e: PoolEvent) => void>(
    (f) => typeof f === "function",
    "must be a function",
  )
    .optional(),
  deadManSwitch: deadManSwitchSchema,
}).strict();

type Resolved = z.infer<typeof optionsSchema>;

function resolveOptions(options: unknown): Resolved {
  const parsed = optionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const path = issue.path.join(".") || "options";
      const got = issue.path.reduce<unknown>(
        (v, k) =>
          (v as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey],
        options,
      );
      const shown = typeof got === "function"
        ? "a function"
        : JSON.stringify(got) ?? "undefined";
      return issue.code === "unrecognized_keys"
        ? `unknown option(s) ${issue.keys.map((k) => `'${k}'`).join(", ")}`
        : `'${path}' ${
          issue.message.replace(/^Invalid input: /, "")
        } (got ${shown})`;
    });
    throw new ConfigError(`Cannot start pool: ${issues.join("; ")}`);
  }
  return parsed.data;
}

interface Job {
  id: number;
  name: string;
  module: string;
  key: string;
  args: Uint8Array;
  /** Where it runs on the worker (sent once per node, before its first call). */
  spec: SandboxSpec;
  timeout: number | undefined;
  /** The node it must run on, for broadcasts. */
  pin?: number;
  node?: PoolNode;
  sentAt: number;
  timer?: ReturnType<typeof setTimeout>;
  settled: boolean;
  /** How many times it was sent again after its node was lost. */
  attempts: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** How a node's worker is started. */
interface WorkerLaunch {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

function workerArgv(
  deno: string,
  config: string | undefined,
  entry: string,
  flags: string[] = [],
): string[] {
  return [
    deno,
    "run",
    "--quiet",
    "--no-prompt",
    "-A",
    "--unstable-worker-options",
    ...flags,
    ...(config ? ["--config", config] : []),
    entry,
  ];
}

interface PoolNode {
  index: number;
  instance: Instance;
  host: Host;
  launch: WorkerLaunch;
  /** The worker's session; replaced when the worker is restarted. */
  session?: NodeSession;
  /** Worker restarts since the last task completed here. */
  restarts: number;
  /** Why the node was given up, once it was. */
  dead?: string;
  /** Whether its worker was ready once (only then is it restarted when lost). */
  readyOnce: boolean;
  running: Set<Job>;
  /** Jobs waiting for this node only (broadcasts). */
  pinned: Job[];
  /** Average time between completions while work was queued, in ms. */
  gapMs: number;
  lastDoneAt: number;
}

/**
 * A task in flight: await it for its result, or cancel it.
 *
 * @typeParam R The task's result.
 */
export interface TaskHandle<R> extends PromiseLike<R> {
  /** The task's id in events. */
  readonly id: number;
  /** Cancels the task; awaiting it then rejects with `TaskCancelledError`. */
  cancel(): void;
}

/**
 * Results of {@linkcode ComputePool.map}: iterate them as they come, or
 * await them all.
 */
export interface MapResults<R> extends AsyncIterable<R>, PromiseLike<R[]> {}

const WORKER_MAIN = new URL("../worker/main.ts", import.meta.url);
const LIBRARY_CONFIG = new URL("../deno.json", import.meta.url);
const HISTORY_LIMIT = 1_000;
/** Worker restarts a node gets before it is given up. */
const MAX_RESTARTS = 3;
/** Tasks completing closer together than this, in ms, are short enough to prefetch. */
const SHORT_TASK_MS = 1;

let poolCounter = 0;

/**
 * A set of nodes that run tasks. Start one with
 * {@linkcode ComputePool.start} and close it with `await using` or
 * {@linkcode ComputePool.close}.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 * import { square } from "../examples/parallel.ts";
 *
 * await using pool = await sky.ComputePool.start({
 *   provider: sky.Local(),
 *   nodes: 2,
 *   console: "silent",
 * });
 * console.log(await pool.run(square(4))); // 16
 * console.log(await pool.run(sky.gather(square(1), square(2)))); // [1, 4]
 * ```
 */
export class ComputePool implements AsyncDisposable {
  /** The pool's id, also the cluster id at the provider and `instanceInfo().jobId`. */
  readonly id: string;
  /** The provider the nodes come from. */
  readonly provider: Provider<any>;
  #options: Resolved;
  #console: ConsoleSink;
  #history: PoolEvent[] = [];
  #subscribers = new Set<(e: PoolEvent | null) => void>();
  #startedAt = Date.now();
  #bundle!: Bundle;
  #cluster: unknown;
  #prepared = false;
  #instances = new Map<string, Instance>();
  #nodes: PoolNode[] = [];
  /** Jobs not yet sent that may run on any node, consumed from `#head`. */
  #queue: Job[] = [];
  #head = 0;
  #jobs = new Map<number, Job>();
  #nextTask = 1;
  #rr = 0;
  #closing: Promise<void> | undefined;
  #closed = false;
  #modules = new Map<string, string>();
  #plan: Promise<BootstrapPlan> | undefined;
  /** Provider calls and node bring-ups under way; closing waits for them. */
  #inflight = new Set<Promise<unknown>>();
  /** Every connection opened to a machine, also those not yet a node. */
  #hosts = new Set<Host>();
  #heartbeat: Heartbeat | undefined;
  #ttl: (() => void) | undefined;

  private constructor(options: Resolved) {
    this.id = `sky-${Date.now().toString(36)}-${(poolCounter++).toString(36)}${
      crypto.randomUUID().slice(0, 4)
    }`;
    this.provider = options.provider;
    this.#options = options;
    this.#console = createConsole(options.console ?? defaultConsoleMode());
  }

  /**
   * Starts a pool: provisions the nodes, ships the code, starts the workers,
   * and resolves once enough nodes are ready.
   *
   * @param options The provider, the number of nodes and the rest.
   * @returns The ready pool.
   * @throws {ConfigError} (as a rejection) When an option is invalid, or when
   *   called while a worker imports the module (a missing `import.meta.main` guard).
   * @throws {ProvisioningError} (as a rejection) When the nodes could not be brought up;
   *   everything launched is released first.
   */
  static async start(options: PoolOptions): Promise<ComputePool> {
    if (onWorker()) {
      const caller = new Error().stack?.split("\n").slice(2).find((l) =>
        !l.includes("/src/pool.ts")
      )?.trim();
      throw new ConfigError(
        `ComputePool.start() was called while a worker imported your module (${
          caller ?? "unknown place"
        }). ` +
          `Put the code that starts pools under \`if (import.meta.main) { ... }\`, so that ` +
          `importing the module only defines its computes.`,
      );
    }
    const pool = new ComputePool(resolveOptions(options));
    track(pool);
    try {
      await pool.#start();
    } catch (error) {
      await pool.close().catch(() => {});
      if (error instanceof ConfigError || error instanceof ProvisioningError) {
        throw error;
      }
      throw new ProvisioningError(
        `Cannot start pool on ${pool.provider.name}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    return pool;
  }

  /** How many nodes are ready. */
  get size(): number {
    return this.#nodes.filter((n) => this.#ready(n)).length;
  }

  /** The process ids of the workers, by node (on their machines). */
  get workerPids(): (number | undefined)[] {
    return this.#nodes.map((n) => n?.session?.pid);
  }

  /** Whether the pool is closed or closing. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Every event of the pool: the lifecycle events so far (task and log events
   * are not replayed), then each new one, until the pool is closed.
   */
  get events(): AsyncIterable<PoolEvent> {
    const history = this.#history.filter((e) =>
      !e.type.startsWith("Task") && e.type !== "Log"
    );
    const subscribers = this.#subscribers;
    const closed = this.#closed && this.#closing === undefined;
    return {
      [Symbol.asyncIterator](): AsyncIterator<PoolEvent> {
        const buffer: (PoolEvent | null)[] = [...history];
        if (closed) buffer.push(null);
        let wake: (() => void) | undefined;
        const subscriber = (e: PoolEvent | null) => {
          buffer.push(e);
          wake?.();
        };
        subscribers.add(subscriber);
        return {
          async next(): Promise<IteratorResult<PoolEvent>> {
            while (buffer.length === 0) {
              await new Promise<void>((r) => wake = r);
            }
            const event = buffer.shift()!;
            if (event === null) {
              subscribers.delete(subscriber);
              return { done: true, value: undefined };
            }
            return { done: false, value: event };
          },
          return(): Promise<IteratorResult<PoolEvent>> {
            subscribers.delete(subscriber);
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
  }

  #emit(init: EventInit): void {
    const event = { ...init, time: Date.now(), pool: this.id } as PoolEvent;
    if (!event.type.startsWith("Task") && event.type !== "Log") {
      this.#history.push(event);
      if (this.#history.length > HISTORY_LIMIT) this.#history.shift();
    }
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      log.warn("onEvent threw: {error}", { error });
    }
    this.#console.event(event);
    for (const subscriber of this.#subscribers) subscriber(event);
  }

  async #start(): Promise<void> {
    const options = this.#options;
    this.#heartbeat = new Heartbeat(
      options.deadManSwitch.heartbeatInterval,
      () => {
        for (const node of this.#nodes) node?.session?.ping();
      },
    );
    const ttl = options.deadManSwitch.ttl;
    if (ttl !== undefined) {
      this.#ttl = after(ttl, () => {
        log.warn("Pool {id} reached its ttl ({ttl} ms): closing it", {
          id: this.id,
          ttl,
        });
        this.close().catch((error) =>
          log.error("Closing pool {id} failed: {error}", { id: this.id, error })
        );
      });
    }
    const nodes = typeof options.nodes === "number"
      ? options.nodes
      : options.nodes.desired;
    const min = typeof options.nodes === "number"
      ? nodes
      : options.nodes.min ?? nodes;
    const roots = [...new Set([...computeModules(), Deno.mainModule])]
      .filter((m) => m.startsWith("file:"));
    const spec: ClusterSpec = {
      clusterId: this.id,
      nodes,
      allocation: options.allocation,
      maxHourlyCost: options.maxHourlyCost,
      accelerator: options.accelerator,
      vcpus: options.vcpus,
      memoryGb: options.memoryGb,
      diskGb: options.diskGb,
      architecture: options.architecture,
      region: options.region,
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ProvisioningError(
              `Cannot start pool: nodes were not ready within provisionTimeout (${options.provisionTimeout} ms)`,
            ),
          ),
        options.provisionTimeout,
      );
    });
    try {
      await Promise.race([deadline, this.#provision(spec, roots, nodes, min)]);
    } finally {
      clearTimeout(timer);
    }
    this.#emit({
      type: "ClusterReady",
      nodes: this.size,
      elapsedMs: Date.now() - this.#startedAt,
    });
  }

  async #provision(
    spec: ClusterSpec,
    roots: string[],
    nodes: number,
    min: number,
  ): Promise<void> {
    const provider = this.provider;
    const [bundle, offers] = await Promise.all([
      buildBundle(roots),
      provider.offers(spec),
    ]);
    this.#bundle = bundle;
    log.debug("Bundle {hash}: {count} files from {root}", {
      hash: bundle.hash,
      count: bundle.files.length,
      root: bundle.root,
    });
    if (offers.length === 0) {
      throw new ProvisioningError(
        `Cannot start pool: ${provider.name} has no offers`,
      );
    }
    this.#checkOpen();
    await this.#track(
      provider.prepare(spec, offers[0]).then((cluster) => {
        this.#cluster = cluster;
        this.#prepared = true;
      }),
    );
    this.#emit({
      type: "ClusterProvisioned",
      provider: provider.name,
      region: offers[0].region,
      nodes,
    });
    const instances = await this.#launch(nodes);
    if (instances.length < min) {
      throw new ProvisioningError(
        `Cannot start pool: ${provider.name} launched ${instances.length} of ${min} node(s)`,
      );
    }
    const peers = instances.map((i) => i.privateAddress ?? "");
    let ready = 0;
    await new Promise<void>((resolve, reject) => {
      let failed = 0;
      instances.forEach((instance, index) => {
        this.#emit({
          type: "InstanceLaunched",
          node: index,
          instance: instance.id,
        });
        this.#track(this.#bringUp(index, instance, peers)).then(() => {
          if (++ready === min) resolve();
        }, (error) => {
          failed++;
          if (instances.length - failed < min) reject(error);
          else {log.warn("Node {index} failed to start: {error}", {
              index,
              error,
            });}
        });
      });
    });
  }

  /** Throws once the pool is closing: nothing new is launched then. */
  #checkOpen(): void {
    if (this.#closed) {
      throw new PoolClosedError("The pool was closed while it was starting");
    }
  }

  /** Keeps a promise in view until it settles, so that closing waits for it. */
  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inflight.add(promise);
    promise.then(
      () => this.#inflight.delete(promise),
      () => this.#inflight.delete(promise),
    );
    return promise;
  }

  /** Asks the provider for machines, recording each the moment it is known. */
  #launch(count: number): Promise<Instance[]> {
    this.#checkOpen();
    return this.#track(
      this.provider.provision(this.#cluster, count).then((instances) => {
        for (const instance of instances) {
          this.#instances.set(instance.id, instance);
        }
        return instances;
      }),
    );
  }

  async #waitRunning(instance: Instance): Promise<Instance> {
    let current: Instance | undefined = instance;
    for (
      let delay = 250;
      current?.status !== "running";
      delay = Math.min(delay * 2, 5_000)
    ) {
      if (!current || current.status === "terminated") {
        throw new ProvisioningError(
          `Instance ${instance.id} was terminated before it ran`,
        );
      }
      await new Promise((r) => setTimeout(r, delay));
      this.#checkOpen();
      current = await this.provider.getInstance(this.#cluster, instance.id);
    }
    return current;
  }

  async #bringUp(
    index: number,
    launched: Instance,
    peers: string[],
  ): Promise<void> {
    const instance = await this.#waitRunning(launched);
    this.#instances.set(instance.id, instance);
    const endpoint = instance.endpoint;
    if (!endpoint) {
      throw new ProvisioningError(`Instance ${instance.id} has no endpoint`);
    }
    this.#emit({
      type: "InstanceRunning",
      node: index,
      instance: instance.id,
      address: endpoint.kind === "local"
        ? endpoint.dir
        : `${endpoint.host}:${endpoint.port}`,
    });
    this.#checkOpen();
    const host = await this.#connect(endpoint, index);
    this.#hosts.add(host);
    if (this.#closed) {
      await host.close().catch(() => {});
      this.#checkOpen();
    }
    const bootStart = Date.now();
    this.#emit({
      type: "InstanceProvisioned",
      node: index,
      instance: instance.id,
    });
    const info: Omit<InstanceInfo, "hostname"> = {
      node: index,
      totalNodes: peers.length,
      isHead: index === 0,
      headAddr: peers[0] ?? "",
      headPort: 29500,
      peers,
      accelerators: this.#options.accelerator
        ? [{
          name: this.#options.accelerator.name,
          count: this.#options.accelerator.count,
          memory: this.#options.accelerator.memory,
        }]
        : [],
      jobId: this.id,
    };
    let launch: WorkerLaunch;
    try {
      launch = endpoint.kind === "local"
        ? await this.#shipLocally(index, host, endpoint.dir)
        : await this.#bootstrapRemote(index, host);
      this.#checkOpen();
    } catch (error) {
      await host.close().catch(() => {});
      throw error;
    }
    launch.env.SKYWARD_INSTANCE = JSON.stringify(info);
    this.#emit({
      type: "InstanceBootstrapped",
      node: index,
      instance: instance.id,
      elapsedMs: Date.now() - bootStart,
    });
    const node: PoolNode = {
      index,
      instance,
      host,
      launch,
      running: new Set(),
      pinned: [],
      gapMs: Infinity,
      lastDoneAt: 0,
      restarts: 0,
      readyOnce: false,
    };
    this.#nodes[index] = node;
    await this.#startWorker(node);
  }

  /** Opens the transport to a machine. */
  async #connect(endpoint: Endpoint, index: number): Promise<Host> {
    if (endpoint.kind === "local") return new LocalHost(endpoint.dir);
    const target = `${endpoint.user}@${endpoint.host}:${endpoint.port}`;
    try {
      const connection = await SshConnection.connect({
        host: endpoint.host,
        port: endpoint.port,
        user: endpoint.user,
        privateKey: endpoint.privateKey,
        hostKey: endpoint.hostKey,
        knownHostsPath: endpoint.knownHostsPath,
        retries: 5,
      });
      return new SshHost(connection);
    } catch (error) {
      throw new ProvisioningError(
        `Cannot reach node ${index} at ${target}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
  }

  /** Copies the code into a local node's directory (once per hash). */
  async #shipLocally(
    index: number,
    host: Host,
    dir: string,
  ): Promise<WorkerLaunch> {
    if (this.#options.image?.apt.length) {
      throw new ConfigError(
        `Cannot install apt packages on ${this.provider.name} nodes: they are processes on this machine`,
      );
    }
    const codeDir = `${dir}/code/${this.#bundle.hash}`;
    const started = Date.now();
    this.#phase(index, "code", "started", started);
    const present = await host.exists(codeDir);
    if (!present) {
      await host.writeTree(codeDir, [
        ...this.#bundle.files,
        {
          path: ".skyward-hash",
          data: new TextEncoder().encode(this.#bundle.hash),
        },
      ]);
    }
    this.#phase(index, "code", present ? "skipped" : "completed", started);
    const config = this.#bundle.config
      ? `${codeDir}/${this.#bundle.config}`
      : WORKER_MAIN.protocol === "file:"
      ? decodeURIComponent(LIBRARY_CONFIG.pathname)
      : undefined;
    return {
      argv: workerArgv(
        Deno.execPath(),
        config,
        WORKER_MAIN.protocol === "file:"
          ? decodeURIComponent(WORKER_MAIN.pathname)
          : WORKER_MAIN.href,
      ),
      cwd: codeDir,
      env: { ...this.#options.image?.env, SKYWARD_CODE_DIR: codeDir },
    };
  }

  /** Runs the bootstrap script on a remote node. */
  async #bootstrapRemote(index: number, host: Host): Promise<WorkerLaunch> {
    // One plan for every node: the bootstrap caches its preparation per plan.
    this.#plan ??= libraryBundle().then((lib) => ({
      image: this.#options.image ?? Image(),
      denoVersion: Deno.version.deno,
      code: this.#bundle,
      lib,
    }));
    const result = await bootstrap(host, await this.#plan, (e) =>
      this.#emit({
        type: "BootstrapPhase",
        node: index,
        phase: e.phase,
        status: e.status,
        elapsedMs: e.elapsedMs,
        ...(e.output === undefined ? {} : { output: e.output }),
      }));
    return {
      argv: workerArgv(result.denoPath, result.configPath, result.workerEntry, [
        "--cached-only",
      ]),
      cwd: result.codeDir,
      env: { ...result.env },
    };
  }

  #phase(
    node: number,
    phase: BootstrapPhaseName,
    status: "started" | "completed" | "skipped" | "failed",
    since: number,
  ): void {
    this.#emit({
      type: "BootstrapPhase",
      node,
      phase,
      status,
      elapsedMs: status === "started" ? 0 : Date.now() - since,
    });
  }

  /** Starts (or restarts) a node's worker and does the handshake. */
  async #startWorker(node: PoolNode): Promise<void> {
    const started = Date.now();
    this.#phase(node.index, "worker", "started", started);
    this.#checkOpen();
    const channel = await node.host.exec(node.launch.argv, {
      cwd: node.launch.cwd,
      env: {
        ...node.launch.env,
        SKYWARD_DEADMAN: workerDeadManSettings(
          this.#options.deadManSwitch,
          this.provider.powerOffCommand,
          this.#startedAt,
        ),
      },
    });
    if (this.#closed) {
      channel.kill();
      await channel.exited;
      this.#checkOpen();
    }
    const session = new NodeSession(node.index, channel, {
      log: (stream, line, task) =>
        this.#emit({ type: "Log", node: node.index, task, stream, line }),
      lost: (reason) => this.#lost(node, session, reason),
    });
    session.rootUrl = this.#bundle.rootUrl;
    node.session = session;
    const hello = await session.handshake({
      code: this.#bundle.hash,
      deno: Deno.version.deno,
      modules: [...this.#moduleMap().values()],
      concurrency: this.#options.worker.concurrency,
    }).catch((error) => {
      this.#phase(node.index, "worker", "failed", started);
      session.kill();
      throw error;
    });
    this.#phase(node.index, "worker", "completed", started);
    node.readyOnce = true;
    this.#emit({
      type: "NodeReady",
      node: node.index,
      instance: node.instance.id,
      pid: hello.pid,
      hostname: hello.hostname,
    });
    this.#drain();
  }

  /** Shipped path of each module that defines a compute, by client URL. */
  #moduleMap(): Map<string, string> {
    for (const module of computeModules()) {
      if (this.#modules.has(module)) continue;
      const path = bundlePath(this.#bundle, module);
      if (path) this.#modules.set(module, path);
    }
    return this.#modules;
  }

  /**
   * A node's worker stopped answering. Its tasks are sent again (up to
   * `retryOnInterruption` times each), and its worker is restarted on the
   * same machine once the transport is back — or, when the provider says the
   * machine is gone (a spot interruption), on a new machine provisioned for
   * the same node; a node that cannot be restarted is dropped, and its tasks
   * go to the others.
   */
  #lost(node: PoolNode, session: NodeSession, reason: string): void {
    // A worker that never became ready is the bring-up's failure to report.
    if (this.#closed || node.session !== session || !node.readyOnce) return;
    this.#emit({ type: "NodeLost", node: node.index, reason });
    const retry: Job[] = [];
    for (const job of node.running) {
      job.node = undefined;
      if (job.attempts < this.#options.retryOnInterruption) {
        job.attempts++;
        clearTimeout(job.timer);
        retry.push(job);
      } else {
        this.#settle(job, new NodeLostError(node.index, reason));
      }
    }
    node.running.clear();
    for (const job of retry) {
      if (job.pin !== undefined) node.pinned.unshift(job);
    }
    this.#queue.splice(
      this.#head,
      0,
      ...retry.filter((j) => j.pin === undefined),
    );
    this.#drain();
    this.#restart(node, reason);
  }

  async #restart(node: PoolNode, reason: string): Promise<void> {
    while (!this.#closed && node.restarts < MAX_RESTARTS) {
      node.restarts++;
      try {
        if (await this.#replaceIfGone(node)) return;
        await this.#startWorker(node);
        return;
      } catch (error) {
        log.warn("Node {node} could not restart its worker: {error}", {
          node: node.index,
          error,
        });
        await new Promise((r) => setTimeout(r, 250 * 2 ** node.restarts));
      }
    }
    if (this.#closed) return;
    // The node is gone for good: its pinned tasks cannot run anywhere else.
    node.dead = reason;
    for (const job of node.pinned.splice(0)) {
      this.#settle(job, new NodeLostError(node.index, reason));
    }
    if (!this.#nodes.some((n) => n && !n.dead)) {
      const error = new NodeLostError(node.index, `${reason}; no node is left`);
      for (const job of [...this.#jobs.values()]) this.#settle(job, error);
    }
  }

  /**
   * Replaces a node whose machine the provider took back (a spot
   * interruption, or a machine terminated under it): provisions a new
   * machine for the same node index and brings it up there. Says whether it
   * did; `false` when the machine is still there.
   */
  async #replaceIfGone(node: PoolNode): Promise<boolean> {
    const previous = node.instance;
    const current = await this.provider.getInstance(this.#cluster, previous.id)
      .catch(() => previous);
    if (current && current.status !== "terminated") return false;
    if (this.#instances.delete(previous.id)) {
      this.#emit({
        type: "InstancePreempted",
        node: node.index,
        instance: previous.id,
      });
      node.session?.kill();
      await node.host.close().catch(() => {});
      await this.provider.terminate(this.#cluster, [previous.id]).catch(
        () => {},
      );
    }
    if (this.#closed) return true;
    const [replacement] = await this.#launch(1);
    if (!replacement) {
      throw new ProvisioningError(
        `${this.provider.name} launched no machine to replace node ${node.index}`,
      );
    }
    this.#emit({
      type: "InstanceLaunched",
      node: node.index,
      instance: replacement.id,
    });
    const peers = this.#nodes.map((n) => n?.instance.privateAddress ?? "");
    peers[node.index] = replacement.privateAddress ?? "";
    try {
      await this.#track(this.#bringUp(node.index, replacement, peers));
    } catch (error) {
      const failed = this.#nodes[node.index];
      if (failed !== node) {
        failed.session?.kill();
        await failed.host.close().catch(() => {});
        this.#nodes[node.index] = node;
      }
      this.#instances.delete(replacement.id);
      await this.provider.terminate(this.#cluster, [replacement.id]).catch(
        () => {},
      );
      throw error;
    }
    const fresh = this.#nodes[node.index];
    fresh.pinned.push(...node.pinned.splice(0));
    this.#emit({
      type: "InstanceReplaced",
      node: node.index,
      previous: previous.id,
      instance: replacement.id,
    });
    if (this.#closed) {
      fresh.session?.kill();
      await fresh.host.close().catch(() => {});
      return true;
    }
    this.#drain();
    return true;
  }

  #makeJob(task: Pending<unknown>, pin?: number): Job {
    if (!isPending(task)) {
      throw new TypeError(
        `Cannot run ${typeof task}: expected a task (call a compute to build one) or a group`,
      );
    }
    if (this.#closed) throw new PoolClosedError();
    const compute = task.compute as Compute<unknown[], unknown>;
    const module = this.#moduleMap().get(compute.id.module);
    if (module === undefined) {
      throw new ConfigError(
        `Cannot run '${compute.id.name}': its module ${compute.id.module} was not shipped to the ` +
          `nodes. Import it before ComputePool.start() so that it is part of the code bundle.`,
      );
    }
    const args = encode(task.args, "args");
    const job: Job = {
      id: this.#nextTask++,
      name: compute.id.name,
      module,
      key: compute.id.key,
      args,
      spec: sandboxSpecOf(compute, this.#options.image),
      timeout: task.timeout ?? compute.options.timeout ??
        this.#options.taskTimeout,
      pin,
      sentAt: 0,
      settled: false,
      attempts: 0,
      resolve: () => {},
      reject: () => {},
    };
    return job;
  }

  #enqueue(job: Job): Promise<unknown> {
    const promise = new Promise<unknown>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    this.#jobs.set(job.id, job);
    if (job.pin === undefined) this.#queue.push(job);
    else this.#nodes[job.pin].pinned.push(job);
    this.#drain();
    return promise;
  }

  /**
   * Tasks a node may hold: its slots, plus `prefetch` more while its tasks
   * are short (completions under {@linkcode SHORT_TASK_MS} apart), where the
   * round trip would otherwise dominate. Long tasks get no prefetch, so a
   * slow task never holds queued work back from an idle node.
   */
  #capacity(node?: PoolNode): number {
    const { concurrency, prefetch } = this.#options.worker;
    return concurrency +
      (node === undefined || node.gapMs < SHORT_TASK_MS ? prefetch : 0);
  }

  /** Updates a node's average gap between completions while work is queued. */
  #completed(node: PoolNode): void {
    const now = performance.now();
    if (node.lastDoneAt > 0 && this.#head < this.#queue.length) {
      node.gapMs = node.gapMs === Infinity
        ? now - node.lastDoneAt
        : 0.8 * node.gapMs + 0.2 * (now - node.lastDoneAt);
    }
    node.lastDoneAt = now;
    node.restarts = 0;
  }

  #ready(
    node: PoolNode | undefined,
  ): node is PoolNode & { session: NodeSession } {
    return node !== undefined && node.session !== undefined &&
      !node.session.lostReason && node.session.codeUrl !== "";
  }

  /**
   * Sends queued jobs to nodes with a free slot: each node's pinned jobs
   * first, then the shared queue, round robin over the ready nodes. Settled
   * jobs left in a queue are skipped.
   */
  #drain(): void {
    const nodes = this.#nodes;
    for (const node of nodes) {
      if (!this.#ready(node)) continue;
      while (
        node.pinned.length > 0 && node.running.size < this.#capacity(node)
      ) {
        const job = node.pinned.shift()!;
        if (!job.settled) this.#send(job, node);
      }
    }
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const job = queue[this.#head];
      if (job.settled) {
        this.#head++;
        continue;
      }
      let target: PoolNode | undefined;
      for (let k = 0; k < nodes.length; k++) {
        const node = nodes[(this.#rr + k) % nodes.length];
        if (this.#ready(node) && node.running.size < this.#capacity(node)) {
          target = node;
          this.#rr = (this.#rr + k + 1) % nodes.length;
          break;
        }
      }
      if (!target) break;
      this.#head++;
      this.#send(job, target);
    }
    // Compact the queue once its consumed head dominates it.
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #send(job: Job, node: PoolNode): void {
    job.node = node;
    job.sentAt = performance.now();
    node.running.add(job);
    this.#emit({
      type: "TaskStarted",
      task: job.id,
      name: job.name,
      node: node.index,
    });
    if (job.timeout !== undefined) {
      job.timer = setTimeout(() => {
        node.session?.cancel(job.id);
        node.session?.forget(job.id);
        this.#settle(job, new TaskTimeoutError(job.name, job.timeout!));
      }, job.timeout);
    }
    node.session!.call(job.id, job.module, job.key, job.args, job.spec).then(
      (payload) => {
        let value: unknown;
        try {
          value = decode(payload);
        } catch (error) {
          this.#settle(job, error as Error);
          return;
        }
        this.#settle(job, undefined, value);
      },
      (error: Error) => {
        // A lost node's tasks are settled or sent again by #lost.
        if (error instanceof NodeLostError) return;
        if (
          error instanceof TaskCancelledError || error.name === "RemoteError" &&
            (error as { remoteName?: string }).remoteName ===
              "TaskCancelledError"
        ) {
          this.#settle(job, new TaskCancelledError(job.name));
        } else this.#settle(job, error);
      },
    );
  }

  #settle(job: Job, error: Error | undefined, value?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    this.#jobs.delete(job.id);
    const node = job.node;
    if (node) {
      this.#completed(node);
      node.running.delete(job);
      const elapsedMs = performance.now() - job.sentAt;
      if (error) {
        this.#emit({
          type: "TaskFailed",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs,
          error: error.name,
          message: error.message,
        });
      } else {
        this.#emit({
          type: "TaskCompleted",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs,
        });
      }
    }
    if (error) job.reject(error);
    else job.resolve(value);
    if (node && !this.#closed) this.#drain();
  }

  #cancel(job: Job, reason?: string): void {
    if (job.settled) return;
    if (job.node) {
      job.node.session?.cancel(job.id);
      job.node.session?.forget(job.id);
    }
    this.#settle(job, new TaskCancelledError(job.name, reason));
  }

  /** Builds and queues the jobs of a task or group; rejects synchronously-built failures. */
  #dispatch<R>(
    task: Dispatchable<R>,
    options: RunOptions,
  ): { jobs: Job[]; results: Promise<unknown>[] } {
    const signal = options.signal;
    const tasks = isGroup(task)
      ? (task as Group<R>).tasks
      : [task as Pending<unknown>];
    if (!isGroup(task) && !isPending(task)) {
      throw new TypeError(
        `Cannot run ${
          task === null ? "null" : typeof task
        }: expected a task (call a compute to ` +
          `build one) or a group from sky.gather() or sky.all()`,
      );
    }
    const pin = options.node;
    if (pin !== undefined) {
      const node = this.#nodes[pin];
      if (!Number.isInteger(pin) || !node || node.dead) {
        throw new RangeError(
          `Cannot run on node ${pin}: the pool's nodes are 0 to ${
            this.#nodes.length - 1
          }${node?.dead ? ` and node ${pin} was lost (${node.dead})` : ""}`,
        );
      }
    }
    const jobs = tasks.map((t) => this.#makeJob(t, pin));
    const results = jobs.map((job) => this.#enqueue(job));
    if (signal) {
      const abort = () => jobs.forEach((job) => this.#cancel(job, "aborted"));
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
    }
    return { jobs, results };
  }

  /**
   * Runs a task, or a group of tasks, and resolves to the result: `R` for a
   * task, `R[]` for `gather`, a typed tuple for `all`. When one task of a
   * group fails, the others are cancelled and the error is rethrown.
   *
   * @param task A task (`square(2)`) or a group (`sky.gather(...)`, `sky.all(...)`).
   * @param options An `AbortSignal` that cancels it.
   * @returns The result.
   * @throws {RemoteError} (as a rejection) When the task threw on the worker.
   * @throws {SerializationError} (as a rejection) When an argument or the result cannot be sent.
   * @throws {TaskTimeoutError} (as a rejection) When the task ran past its timeout.
   * @throws {PoolClosedError} (as a rejection) When the pool closed first.
   *
   * @example
   * ```ts
   * import * as sky from "../mod.ts";
   * import { square } from "../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * const n: number = await pool.run(square(3)); // 9
   * const [a, b] = await pool.run(sky.all(square(1), square(2))); // [1, 4]
   * console.log(n, a, b);
   * ```
   */
  async run<R>(task: Dispatchable<R>, options: RunOptions = {}): Promise<R> {
    const { jobs, results } = this.#dispatch(task, options);
    if (!isGroup(task)) return await results[0] as R;
    try {
      return await Promise.all(results) as R;
    } catch (error) {
      for (const job of jobs) {
        this.#cancel(job, "cancelled because another task of its group failed");
      }
      throw error;
    }
  }

  /**
   * Sends a task without waiting: the handle is a promise of the result with
   * a `cancel()` method.
   *
   * @param task A task or a group.
   * @returns A handle to await or cancel.
   *
   * @example
   * ```ts
   * import * as sky from "../mod.ts";
   * import { square } from "../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * const handle = pool.submit(square(5));
   * console.log(await handle); // 25
   * ```
   */
  submit<R>(
    task: Dispatchable<R>,
    options: Omit<RunOptions, "signal"> = {},
  ): TaskHandle<R> {
    const controller = new AbortController();
    let promise: Promise<R>;
    let id = 0;
    try {
      if (isPending(task)) {
        const { jobs, results } = this.#dispatch(task, {
          ...options,
          signal: controller.signal,
        });
        id = jobs[0].id;
        promise = results[0] as Promise<R>;
      } else {
        promise = this.run(task, { ...options, signal: controller.signal });
      }
    } catch (error) {
      promise = Promise.reject(error);
    }
    return {
      id,
      then: (onFulfilled, onRejected) => promise.then(onFulfilled, onRejected),
      cancel: () => controller.abort(),
    };
  }

  /**
   * Runs a task once on every ready node and resolves to the results by
   * node index. Fails if any node's task fails.
   *
   * @param task The task to run everywhere.
   * @returns One result per node, `results[i]` from node `i`.
   *
   * @example
   * ```ts
   * import * as sky from "../mod.ts";
   * import { workerInfo } from "../examples/broadcast.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), nodes: 2, console: "silent" });
   * console.log((await pool.broadcast(workerInfo())).map((i) => i.node)); // [0, 1]
   * ```
   */
  async broadcast<R>(task: Pending<R>, options: RunOptions = {}): Promise<R[]> {
    if (!isPending(task)) {
      throw new TypeError(
        `Cannot broadcast ${typeof task}: expected a task (call a compute)`,
      );
    }
    // Every node that is up, or restarting its worker.
    const nodes = this.#nodes.filter((n) => n && !n.dead && n.session);
    if (this.#closed) throw new PoolClosedError();
    const jobs = nodes.map((node) =>
      this.#makeJob(task as Pending<unknown>, node.index)
    );
    const results = jobs.map((job) => this.#enqueue(job));
    const abort = () => jobs.forEach((job) => this.#cancel(job, "aborted"));
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      return await Promise.all(results) as R[];
    } catch (error) {
      abort();
      throw error;
    } finally {
      options.signal?.removeEventListener("abort", abort);
    }
  }

  /**
   * Runs a group and yields each result as it arrives: in the group's order,
   * or in completion order with `{ ordered: false }`. Leaving the loop early
   * cancels the tasks still running.
   *
   * @param group A group from `sky.gather(...)`.
   * @param options `ordered` (default `true`) and an `AbortSignal`.
   * @returns The results, as an async iterable.
   *
   * @example
   * ```ts
   * import * as sky from "../mod.ts";
   * import { square } from "../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * for await (const r of pool.stream(sky.gather(square(1), square(2)), { ordered: false })) {
   *   console.log(r);
   * }
   * ```
   */
  async *stream<R>(
    group: Group<R[]> | Group<readonly R[]>,
    options: RunOptions & { ordered?: boolean } = {},
  ): AsyncGenerator<R, void, undefined> {
    if (!isGroup(group)) {
      throw new TypeError(
        `Cannot stream ${typeof group}: expected a group from sky.gather()`,
      );
    }
    const { jobs, results } = this.#dispatch(group as Group<R[]>, options);
    try {
      if (options.ordered ?? true) {
        for (const result of results) yield await result as R;
      } else {
        const pending = new Map(
          results.map((p, i) => [i, p.then((v) => [i, v] as const)]),
        );
        while (pending.size > 0) {
          const [i, value] = await Promise.race(pending.values());
          pending.delete(i);
          yield value as R;
        }
      }
    } finally {
      for (const job of jobs) {
        this.#cancel(job, "cancelled: the stream was left early or failed");
      }
      for (const result of results) result.catch(() => {});
    }
  }

  /**
   * Applies a one-argument compute to every item, a bounded number in flight
   * at a time. Iterate the results as they come, or await them all.
   *
   * @param compute The compute to apply.
   * @param items The inputs: an array, any iterable, or an async iterable.
   * @param options `ordered` (default `true`): results in input order, else as they complete.
   * @returns The results.
   *
   * @example
   * ```ts
   * import * as sky from "../mod.ts";
   * import { square } from "../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * console.log(await pool.map(square, [1, 2, 3])); // [1, 4, 9]
   * ```
   */
  map<A, R>(
    compute: Compute<[A], R>,
    items: Iterable<A> | AsyncIterable<A>,
    options: RunOptions & { ordered?: boolean } = {},
  ): MapResults<R> {
    // deno-lint-ignore no-this-alias
    const pool = this;
    const ordered = options.ordered ?? true;
    async function* results(): AsyncGenerator<R, void, undefined> {
      const window = Math.max(2, pool.size * pool.#capacity() * 2);
      const inFlight: { job: Job; result: Promise<[Job, unknown]> }[] = [];
      const abort = () => {
        for (const { job } of inFlight) pool.#cancel(job, "aborted");
      };
      options.signal?.addEventListener("abort", abort, { once: true });
      try {
        for await (const item of items as AsyncIterable<A>) {
          if (options.signal?.aborted) {
            throw new TaskCancelledError(compute.id.name, "aborted");
          }
          const job = pool.#makeJob(
            compute(item) as Pending<unknown>,
            options.node,
          );
          const result = pool.#enqueue(job).then((v) =>
            [job, v] as [Job, unknown]
          );
          result.catch(() => {});
          inFlight.push({ job, result });
          while (inFlight.length >= window) yield await take();
        }
        while (inFlight.length > 0) yield await take();
      } finally {
        options.signal?.removeEventListener("abort", abort);
        for (const { job } of inFlight) {
          pool.#cancel(job, "cancelled: the map was left early or failed");
        }
      }
      async function take(): Promise<R> {
        if (ordered) return (await inFlight.shift()!.result)[1] as R;
        const [job, value] = await Promise.race(inFlight.map((f) => f.result));
        inFlight.splice(inFlight.findIndex((f) => f.job === job), 1);
        return value as R;
      }
    }
    return {
      [Symbol.asyncIterator]: () => results(),
      then: (onFulfilled, onRejected) =>
        Array.fromAsync(results()).then(onFulfilled, onRejected),
    };
  }

  /**
   * Closes the pool: rejects queued and running tasks with `PoolClosedError`,
   * stops the workers and releases every machine. Safe to call twice.
   *
   * @returns Once everything is released.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#heartbeat?.stop();
    this.#ttl?.();
    const closed = new PoolClosedError(
      "The pool was closed before the task finished",
    );
    for (const job of [...this.#jobs.values()]) this.#settle(job, closed);
    this.#queue = [];
    this.#head = 0;
    const errors: unknown[] = [];
    await Promise.all(
      this.#nodes.filter(Boolean).map(async (node) => {
        try {
          await node.session?.close(closed);
          await node.host.close();
        } catch (error) {
          errors.push(error);
        }
      }),
    );
    // Connections of nodes still coming up: closing them cuts their
    // bootstrap short. Then wait for every launch under way, so that each
    // machine it brings is known, and terminated below.
    await Promise.allSettled(
      [...this.#hosts].map((host) => host.close()),
    );
    while (this.#inflight.size > 0) {
      await Promise.allSettled([...this.#inflight]);
    }
    if (this.#prepared) {
      try {
        const ids = [...this.#instances.keys()];
        if (ids.length > 0) {
          await retrying(() => this.provider.terminate(this.#cluster, ids));
        }
        await retrying(() => this.provider.teardown(this.#cluster));
      } catch (error) {
        errors.push(error);
      }
    }
    if (this.#prepared) {
      this.#emit({
        type: "ClusterDestroyed",
        elapsedMs: Date.now() - this.#startedAt,
      });
    }
    this.#console.close();
    for (const subscriber of this.#subscribers) subscriber(null);
    this.#subscribers.clear();
    untrack(this);
    if (errors.length > 0) {
      throw new ProvisioningError(
        `Pool ${this.id} was not released completely: ${
          errors.map((e) => e instanceof Error ? e.message : String(e)).join(
            "; ",
          )
        }. Machines of cluster ${this.id} may be left on ${this.provider.name}.`,
        { cause: errors[0] },
      );
    }
  }

  /** Kills every worker at once, without waiting (used when the process exits). */
  kill(): void {
    for (const node of this.#nodes) node?.session?.kill();
  }

  /** Closes the pool; what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

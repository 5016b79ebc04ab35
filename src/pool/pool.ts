/**
 * `ComputePool`: provisions nodes through a provider, ships the code, starts
 * a worker on each node and runs tasks there; closing it releases
 * everything, also when the program fails or is interrupted.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import type { Accelerator } from "../accelerators.ts";
import {
  buildBundle,
  bundlePath,
  codeKey,
  type IncludedFile,
  includedFiles,
} from "../bootstrap/bundle.ts";
import { type NodeBundle, nodeCode } from "../bootstrap/stage.ts";
import {
  type Compute,
  computeModules,
  type Dispatchable,
  type Group,
  isGroup,
  isPending,
  onWorker,
  type Pending,
} from "../compute.ts";
import { createConsole, defaultConsoleMode } from "./console.ts";
import {
  ConfigError,
  NodeLostError,
  NoOffersError,
  PoolClosedError,
  ProvisioningError,
  TaskCancelledError,
} from "../errors.ts";
import { bootstrap } from "../bootstrap/bootstrap.ts";
import type { BootstrapPlan } from "../bootstrap/plan.ts";
import { librarySource, WORKER_MAIN, workerArgv } from "../bootstrap/worker.ts";
import {
  type NodesOptions,
  nodesSchema,
  planScaling,
  type ResolvedNodes,
} from "./elastic.ts";
import {
  type HealthCheckOptions,
  healthCheckSchema,
  HealthMonitor,
} from "./health.ts";
import {
  type DeadManSwitchOptions,
  deadManSwitchSchema,
  Heartbeat,
  workerDeadManSettings,
} from "./deadman.ts";
import type { BootstrapPhaseName, EventInit, PoolEvent } from "../events.ts";
import { Image, type ResolvedImage } from "../image.ts";
import type { InstanceInfo } from "../instance.ts";
import { logger } from "../log.ts";
import { show, unknownOption } from "../_options.ts";
import { after } from "../_timers.ts";
import { mapResults } from "./map.ts";
import { NodeSession } from "./node.ts";
import type { Job } from "./job.ts";
import {
  isBusy,
  isGated,
  isGone,
  isLeaving,
  isReady,
  type PoolNode,
  takesWork,
  type WorkerLaunch,
} from "./node_state.ts";
import { ClusterView, type View } from "./cluster.ts";
import { EventHub } from "./event_hub.ts";
import {
  type MapResults,
  type RunResult,
  runResult,
  type TaskHandle,
} from "./handles.ts";
import { Scheduler } from "./scheduler.ts";
import { splitStreams, teeArgs } from "./remote_stream.ts";
import {
  DEFAULT_NODE_LIMIT,
  type Endpoint,
  type Instance,
  type NodeLimit,
  type Provider,
  sweepAdvice,
} from "../provider.ts";
import {
  type Candidate,
  hardwareSchema,
  isSpec,
  providerSchema,
  rankOffers,
  type Selection,
  type Spec,
  type SpecRequest,
} from "../spec.ts";
import { retrying, track, untrack } from "./teardown.ts";
import { type Host, sshTransport } from "../transport/host.ts";
import { LocalHost } from "../transport/local.ts";

const log = logger("pool");

/** How many offers a pool tries before it gives up starting. */
const MAX_OFFER_ATTEMPTS = 8;

export type { NodesOptions } from "./elastic.ts";
export type { HealthCheckOptions } from "./health.ts";

/** Options of {@linkcode ComputePool.start}. */
export interface PoolOptions {
  /**
   * Where the nodes come from: `sky.Local()`, `sky.SSH(...)`, a cloud. Give
   * either `provider` or `specs`.
   */
  provider?: Provider<any>;
  /**
   * Several wishes for machines, each a `sky.Spec` with its own provider and
   * hardware: the offers of all of them are ranked by `selection`, the best
   * is provisioned, and when it cannot be prepared or launched the next is
   * tried. The pool's own hardware options (`nodes`, `allocation`,
   * `accelerator`, …) are the defaults of each spec.
   */
  specs?: Spec[];
  /**
   * How to pick among the offers of `specs` (or of the one `provider`):
   * `"cheapest"`, by the price that applies to the allocation, or
   * `"first"`, in the order given.
   * @default "cheapest"
   */
  selection?: Selection;
  /**
   * How many nodes: a count, or `{ desired, min, max }` for a pool that
   * starts once `min` are ready and grows and shrinks between `min` and
   * `max` (see {@linkcode NodesOptions}).
   * @default 1
   */
  nodes?: number | NodesOptions;
  /**
   * A check run on each node: a node takes tasks only once it passed, and is
   * replaced after `failures` failed checks in a row.
   * @default no check
   */
  healthCheck?: HealthCheckOptions;
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
  provider: providerSchema.optional(),
  specs: z.array(
    z.custom<Spec>(isSpec, "must be made with sky.Spec(...)"),
  ).min(1, "must hold at least one sky.Spec").optional(),
  selection: z.enum(["cheapest", "first"]).default("cheapest"),
  nodes: nodesSchema,
  healthCheck: healthCheckSchema.optional(),
  ...hardwareSchema,
  allocation: hardwareSchema.allocation.default("spot-if-available"),
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
}).strict().superRefine((o, ctx) => {
  if ((o.provider === undefined) === (o.specs === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: ["provider"],
      message: o.provider === undefined
        ? "is missing: give a provider, such as sky.Local(), or specs: [sky.Spec(...)]"
        : "and 'specs' were both given: give one of them",
    });
  }
});

type Resolved = z.infer<typeof optionsSchema>;

function resolveOptions(options: unknown): Resolved {
  if (
    options !== undefined &&
    (typeof options !== "object" || options === null || Array.isArray(options))
  ) {
    throw new ConfigError(
      `Cannot start pool: the options must be an object such as { provider: sky.Local() }, got ${
        show(options)
      }`,
    );
  }
  const parsed = optionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.flatMap((issue) =>
      describeIssue(issue, options)
    );
    throw new ConfigError(`Cannot start pool: ${issues.join("; ")}`);
  }
  return parsed.data;
}

/** The keys an object schema accepts, through optional, default and pipe wrappers. */
function knownKeys(schema: z.ZodType, path: PropertyKey[]): string[] {
  // deno-lint-ignore no-explicit-any
  let at: any = schema;
  for (let i = 0; i <= path.length; i++) {
    for (let unwrap = 0; unwrap < 8; unwrap++) {
      const def = at?._zod?.def;
      if (!def) return [];
      if (def.type === "object") break;
      if (def.type === "union") {
        at = def.options.find((o: z.ZodType) =>
          (o as unknown as { _zod: { def: { type: string } } })._zod.def
            .type === "object"
        );
      } else at = def.innerType ?? def.in;
    }
    if (i === path.length) break;
    at = at?._zod?.def?.shape?.[path[i] as string];
  }
  return Object.keys(at?._zod?.def?.shape ?? {});
}

function nodeLimitOf(provider: Provider<any>): NodeLimit {
  return provider.nodeLimit ?? DEFAULT_NODE_LIMIT;
}

/**
 * Refuses, before anything is launched, a pool asking a provider for more
 * nodes than it can hold.
 */
function checkNodeLimits(options: Resolved): void {
  const wishes: { provider: Provider<any>; nodes?: number }[] = options.specs ??
    [{ provider: options.provider! }];
  const { max, desired } = options.nodes;
  const elastic = max !== desired || options.nodes.min !== desired;
  for (const [i, wish] of wishes.entries()) {
    const limit = nodeLimitOf(wish.provider);
    const [asked, option] = wish.nodes !== undefined
      ? [wish.nodes, `specs[${i}].nodes`]
      : [max, elastic ? "nodes.max" : "nodes"];
    if (asked > limit.max) {
      throw new ConfigError(
        `Cannot start pool: '${option}' is ${asked}, more than ${wish.provider.name} allows ` +
          `(at most ${limit.max}: ${limit.reason})`,
      );
    }
  }
}

/**
 * The client starts processes, reads the project to ship it, writes its
 * caches, reads the environment and, but for local nodes, reaches machines:
 * a program started without these permissions is told so once, naming each
 * flag, instead of meeting Deno's refusals one at a time.
 */
function checkClientPermissions(options: Resolved): void {
  const names: Deno.PermissionName[] = ["run", "read", "write", "env"];
  const providers = options.specs?.map((s) => s.provider) ??
    [options.provider!];
  if (providers.some((p) => p.name !== "local")) names.push("net");
  const missing = names.filter((name) =>
    Deno.permissions.querySync({ name } as Deno.PermissionDescriptor)
      .state !== "granted"
  );
  if (missing.length === 0) return;
  throw new ConfigError(
    `Cannot start pool: the program runs without ${
      missing.map((name) => `--allow-${name}`).join(", ")
    }. The client starts worker processes, reads your project to ship it, ` +
      `keeps caches and reaches its machines; your tasks get none of this ` +
      `(their sandboxes hold only what each compute declares). ` +
      `Run the program with \`deno run -A\`.`,
  );
}

/** One message per problem of an option, quoting the value given. */
function describeIssue(
  issue: z.core.$ZodIssue,
  options: unknown,
  prefix: PropertyKey[] = [],
): string[] {
  const fullPath = [...prefix, ...issue.path];
  const path = fullPath.join(".") || "options";
  const got = fullPath.reduce<unknown>(
    (v, k) =>
      (v as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey],
    options,
  );
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = knownKeys(optionsSchema, fullPath);
      return issue.keys.map((key) =>
        `${unknownOption(key, known)}${fullPath.length ? ` in '${path}'` : ""}`
      );
    }
    case "invalid_union": {
      // The branch the value was meant for: the one that got past its type.
      const branch = issue.errors.find((errors) =>
        !errors.some((e) => e.code === "invalid_type" && e.path.length === 0)
      );
      if (branch) {
        return branch.flatMap((e) => describeIssue(e, options, fullPath));
      }
      break;
    }
    case "invalid_type":
      if (issue.message.startsWith("Invalid input")) {
        const what = issue.expected === "int"
          ? "an integer"
          : issue.expected === "number"
          ? "a finite number"
          : issue.expected === "object"
          ? "an object"
          : issue.expected;
        return [`'${path}' must be ${what} (got ${show(got)})`];
      }
      break;
    case "too_small":
    case "too_big":
      if (/^Too (small|big): expected \w+ to (be|have) /.test(issue.message)) {
        return [
          `'${path}' must be ${
            issue.message.replace(
              /^Too (small|big): expected \w+ to (be|have) /,
              "",
            )
          } (got ${show(got)})`,
        ];
      }
      break;
  }
  return [
    `'${path}' ${issue.message.replace(/^Invalid input: /, "")} (got ${
      show(got)
    })`,
  ];
}

/** Worker restarts a node gets before it is given up. */
const MAX_RESTARTS = 3;

let poolCounter = 0;

/** Why the other tasks of a group are cancelled when one fails. */
const GROUP_FAILED = "cancelled because another task of its group failed";

/**
 * A set of nodes that run tasks. Start one with
 * {@linkcode ComputePool.start} and close it with `await using` or
 * {@linkcode ComputePool.close}.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { square } from "../../examples/parallel.ts";
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
  #provider: Provider<any>;
  /** The accelerators of the chosen spec. */
  #accelerator: Accelerator | undefined;
  #options: Resolved;
  #hub: EventHub;
  #scheduler: Scheduler;
  /** Ranks and the cluster view. */
  #view: ClusterView;
  #startedAt = Date.now();
  /** The code as the nodes run it (see `nodeCode`). */
  #bundle!: NodeBundle;
  /** The image's `includes`, found at start. */
  #includes: IncludedFile[] = [];
  #cluster: unknown;
  #prepared = false;
  #instances = new Map<string, Instance>();
  /** The nodes by rank; a rank is free where it holds nothing or a dead node. */
  #nodes: (PoolNode | undefined)[] = [];
  #closing: Promise<void> | undefined;
  #closed = false;
  #modules = new Map<string, string>();
  #plan: Promise<BootstrapPlan> | undefined;
  /** The resolved `nodes` option; `resize()` moves its `min` and `max`. */
  #scaling: ResolvedNodes;
  /** When nodes were last added by the scaling policy or `resize()`. */
  #lastAdded = -Infinity;
  #scaleTimer?: ReturnType<typeof setInterval>;
  #scalePending = false;
  /** Additions of nodes in progress. */
  #growing = new Set<Promise<void>>();
  /** Machines asked of the provider and not returned yet. */
  #provisioning = 0;
  /** Provider calls and node bring-ups under way; closing waits for them. */
  #inflight = new Set<Promise<unknown>>();
  /** Every connection opened to a machine, also those not yet a node. */
  #hosts = new Set<Host>();
  #heartbeat: Heartbeat | undefined;
  #ttl: (() => void) | undefined;
  /** The last node given up for good, once no node is left. */
  #abandoned: { node: number; reason: string } | undefined;
  /** Work of the pool's own (starting, resizing, closing) the program waits for. */
  #keepers = 0;
  /**
   * The timer that keeps the program alive while the pool works. The
   * workers' processes do not: a pool that idles lets the program end (and
   * the teardown closes it then).
   */
  #keepAlive: ReturnType<typeof setInterval> | undefined;

  private constructor(options: Resolved) {
    this.id = `sky-${Date.now().toString(36)}-${(poolCounter++).toString(36)}${
      crypto.randomUUID().slice(0, 4)
    }`;
    this.#provider = options.provider ?? options.specs![0].provider;
    this.#options = options;
    this.#scaling = { ...options.nodes };
    this.#hub = new EventHub({
      pool: this.id,
      onEvent: options.onEvent,
      console: createConsole(options.console ?? defaultConsoleMode()),
    });
    this.#view = new ClusterView({
      nodes: () => this.#nodes,
      closed: () => this.#closed,
    });
    this.#scheduler = new Scheduler({
      ...options.worker,
      provisionTimeout: options.provisionTimeout,
      image: options.image,
      taskTimeout: options.taskTimeout,
      moduleOf: (url) => this.#moduleMap().get(url),
      nodes: () => this.#nodes,
      closed: () => this.#closed,
      emit: (event) => this.#emit(event),
      starting: () => this.#joining.size + this.#provisioning,
      abandoned: () => this.#abandoned,
      activity: () => this.#checkKeepAlive(),
      backlog: () => {
        if (this.#scaleTimer !== undefined) this.#scaleSoon();
      },
    });
  }

  /** Jobs not settled, by id. */
  get #jobs(): Map<number, Job> {
    return this.#scheduler.jobs;
  }

  /** Ranks of nodes still starting, with their private address. */
  get #joining(): Map<number, string> {
    return this.#view.joining;
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
    const resolved = resolveOptions(options);
    checkNodeLimits(resolved);
    checkClientPermissions(resolved);
    const pool = new ComputePool(resolved);
    track(pool);
    const release = pool.#hold();
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
    } finally {
      release();
    }
    return pool;
  }

  /**
   * Keeps the program alive until the returned function is called: for the
   * pool's own work that a caller awaits (tasks are counted apart).
   */
  #hold(): () => void {
    this.#keepers++;
    this.#checkKeepAlive();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#keepers--;
      this.#checkKeepAlive();
    };
  }

  /** Holds the program while the pool starts, resizes, closes or runs tasks. */
  #checkKeepAlive(): void {
    const busy = this.#keepers > 0 || this.#scheduler.pending > 0;
    if (busy && this.#keepAlive === undefined) {
      this.#keepAlive = setInterval(() => {}, 2 ** 30);
    } else if (!busy && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  /**
   * The provider the nodes come from: with `specs`, the one whose offer was
   * chosen (the first spec's until then).
   */
  get provider(): Provider<any> {
    return this.#provider;
  }

  /** How many nodes are ready and take tasks (admitted by their health check, not leaving). */
  get size(): number {
    return this.#nodes.filter((n) => takesWork(n)).length;
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
    return this.#hub.events;
  }

  #emit(init: EventInit): void {
    this.#hub.emit(init);
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
      }, { keepAlive: false });
    }
    const { desired: nodes, min } = options.nodes;
    const roots = [...new Set([...computeModules(), Deno.mainModule])]
      .filter((m) => m.startsWith("file:"));
    const wishes: (Partial<Spec> & Pick<Spec, "provider">)[] = options.specs ??
      [{ provider: this.#provider }];
    const requests: SpecRequest[] = wishes.map((wish) => {
      const count = wish.nodes ?? nodes;
      return {
        provider: wish.provider,
        nodes: count,
        spec: {
          clusterId: this.id,
          nodes: count,
          allocation: wish.allocation ?? options.allocation,
          maxHourlyCost: wish.maxHourlyCost ?? options.maxHourlyCost,
          accelerator: wish.accelerator ?? options.accelerator,
          vcpus: wish.vcpus ?? options.vcpus,
          memoryGb: wish.memoryGb ?? options.memoryGb,
          diskGb: wish.diskGb ?? options.diskGb,
          architecture: wish.architecture ?? options.architecture,
          region: wish.region ?? options.region,
        },
      };
    });
    let cancelDeadline: (() => void) | undefined;
    const deadline = new Promise<never>((_, reject) => {
      cancelDeadline = after(
        options.provisionTimeout,
        () =>
          reject(
            new ProvisioningError(
              `Cannot start pool: nodes were not ready within provisionTimeout (${options.provisionTimeout} ms)`,
            ),
          ),
      );
    });
    try {
      await Promise.race([
        deadline,
        this.#provision(requests, roots, min),
      ]);
    } finally {
      cancelDeadline?.();
    }
    this.#emit({
      type: "ClusterReady",
      nodes: this.size,
      elapsedMs: Date.now() - this.#startedAt,
    });
    if (this.#scaling.max > this.#scaling.min) this.#watchScaling();
  }

  async #provision(
    requests: SpecRequest[],
    roots: string[],
    wanted: number,
  ): Promise<void> {
    const image = this.#options.image ?? Image();
    const [bundle, candidates] = await Promise.all([
      buildBundle(roots).then(async (code) => {
        // A missing include is the same error on every provider, before
        // anything is launched.
        this.#includes = await includedFiles(
          code,
          image.includes,
          image.excludes,
        );
        return nodeCode(code, await librarySource(), image.imports);
      }),
      rankOffers(requests, this.#options.selection),
    ]);
    this.#bundle = bundle;
    log.debug("Bundle {hash}: {count} files from {root}", {
      hash: bundle.hash,
      count: bundle.files.length,
      root: bundle.root,
    });
    const instances = await this.#launchBest(candidates, wanted);
    const min = Math.min(wanted, instances.length);
    let ready = 0;
    await new Promise<void>((resolve, reject) => {
      let failed = 0;
      if (min === 0) resolve();
      for (const instance of instances) {
        this.#join(instance).then(() => {
          if (++ready === min) resolve();
        }, (error) => {
          failed++;
          if (instances.length - failed < min) reject(error);
        });
      }
    });
  }

  /**
   * Prepares and launches the best candidate; when that fails, releases what
   * it made and tries the next. A `ConfigError` (credentials, a spec the
   * provider cannot meet) skips the rest of that provider's offers.
   */
  async #launchBest(
    candidates: Candidate[],
    wanted: number,
  ): Promise<Instance[]> {
    const failures: { candidate: Candidate; error: unknown }[] = [];
    const refused = new Set<Provider<any>>();
    for (const candidate of candidates.slice(0, MAX_OFFER_ATTEMPTS)) {
      const { provider, spec, offer, nodes } = candidate;
      if (refused.has(provider) || this.#closed) continue;
      const min = Math.min(wanted, nodes);
      this.#provider = provider;
      try {
        this.#checkOpen();
        await this.#track(
          provider.prepare(spec, offer).then((cluster) => {
            this.#cluster = cluster;
            this.#prepared = true;
          }),
        );
        this.#emit({
          type: "ClusterProvisioned",
          provider: provider.name,
          region: offer.region,
          nodes,
        });
        this.#accelerator = spec.accelerator;
        // An elastic pool may start with no node, to wake on its first task.
        if (nodes === 0) return [];
        const instances = await this.#launch(nodes);
        if (instances.length < min) {
          throw new ProvisioningError(
            `Cannot start pool: ${provider.name} launched ${instances.length} of ${min} node(s)`,
          );
        }
        return instances;
      } catch (error) {
        failures.push({ candidate, error });
        if (error instanceof ConfigError) refused.add(provider);
        if (candidates.length > 1) {
          log.warn(
            "Offer {type} of {provider} failed, trying the next: {error}",
            { type: offer.instanceType, provider: provider.name, error },
          );
        }
        if (this.#prepared) {
          this.#prepared = false;
          this.#instances.clear();
          await provider.teardown(this.#cluster).catch((e) =>
            log.error("Teardown of a failed offer failed: {e}", { e })
          );
        }
      }
    }
    if (this.#closed) throw new PoolClosedError();
    if (failures.length === 1) throw failures[0].error;
    const noCapacity = failures.every(({ error }) =>
      error instanceof NoOffersError
    );
    const where = ({ candidate: c }: (typeof failures)[number]) =>
      `${c.provider.name} ${c.offer.instanceType}${
        c.offer.region ? ` (${c.offer.region})` : ""
      }`;
    const last = failures.at(-1)?.error;
    if (noCapacity) {
      throw new NoOffersError(
        `${(failures[0].error as Error).message} (no capacity for the ${
          failures.length - 1
        } next offer(s) either: ${failures.slice(1).map(where).join(", ")})`,
        { cause: last },
      );
    }
    throw new ProvisioningError(
      `Cannot start pool: none of ${failures.length} offer(s) could be launched: ${
        failures.map((f) =>
          `${where(f)}: ${
            f.error instanceof Error ? f.error.message : String(f.error)
          }`
        ).join("; ")
      }`,
      { cause: last },
    );
  }

  /**
   * Brings a launched machine into the pool at the lowest free rank
   * (counting `freeing`, the rank of a node it replaces, as free) and says
   * which. When it fails, its machine is released and its rank freed.
   */
  async #join(instance: Instance, freeing?: number): Promise<number> {
    const index = this.#freeRank(freeing);
    this.#joining.set(index, instance.privateAddress ?? "");
    this.#emit({
      type: "InstanceLaunched",
      node: index,
      instance: instance.id,
    });
    this.#announce();
    try {
      await this.#track(this.#bringUp(index, instance));
    } catch (error) {
      log.warn("Node {index} failed to start: {error}", { index, error });
      this.#instances.delete(instance.id);
      await this.provider.terminate(this.#cluster, [instance.id]).catch(
        () => {},
      );
      throw error;
    } finally {
      this.#joining.delete(index);
      this.#announce();
    }
    return index;
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

  /**
   * Brings a machine up as node `index`: waits for it to run, connects,
   * ships the code, starts the worker and, with a health check, waits for
   * its first success. On failure it leaves `#nodes[index]` as it found it.
   */
  async #bringUp(index: number, launched: Instance): Promise<void> {
    const instance = await this.#waitRunning(launched);
    this.#instances.set(instance.id, instance);
    // A machine may get its private address only once it runs.
    if (this.#joining.has(index) && instance.privateAddress) {
      this.#joining.set(index, instance.privateAddress);
    }
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
    const view = this.#clusterView();
    const info: Omit<InstanceInfo, "hostname"> = {
      node: index,
      ...view,
      isHead: index === 0,
      headPort: 29500,
      accelerators: this.#accelerator
        ? [{
          name: this.#accelerator.name,
          count: this.#accelerator.count,
          memory: this.#accelerator.memory,
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
    const health = this.#options.healthCheck;
    const node: PoolNode = {
      index,
      instance,
      host,
      launch,
      running: new Set(),
      pinned: [],
      gapMs: Infinity,
      lastDoneAt: 0,
      idleSince: performance.now(),
      restarts: 0,
      readyOnce: false,
      gated: health !== undefined,
      view: JSON.stringify(view),
    };
    const before = this.#nodes[index];
    this.#nodes[index] = node;
    try {
      await this.#startWorker(node);
      if (this.#closed) throw new PoolClosedError();
      if (health) {
        node.health = new HealthMonitor(health, {
          probe: () => this.#probe(node),
          busy: () => node.running.size >= this.#options.worker.concurrency,
          failed: (failures, error) =>
            this.#emit({
              type: "HealthCheckFailed",
              node: node.index,
              failures,
              message: error.message,
            }),
          unhealthy: (reason) => {
            if (this.#nodes[node.index] !== node || node.retiring) return;
            node.unhealthy = reason;
            node.session?.kill();
          },
        });
        await node.health.admit();
        node.gated = false;
        node.health.start();
        this.#emit({
          type: "NodeReady",
          node: index,
          instance: instance.id,
          pid: node.hello!.pid,
          hostname: node.hello!.hostname,
        });
        this.#drain();
      }
    } catch (error) {
      node.health?.stop();
      node.dead = error instanceof Error ? error.message : String(error);
      node.session?.kill();
      await host.close().catch(() => {});
      if (this.#nodes[index] === node) this.#nodes[index] = before;
      const lost = new NodeLostError(index, node.dead);
      for (const job of [...node.running]) {
        // Only its health checks could run there: other tasks go elsewhere.
        node.running.delete(job);
        job.node = undefined;
        job.timer?.();
        if (job.probe || job.pin !== undefined) this.#settle(job, lost);
        else this.#scheduler.requeue([job]);
      }
      for (const job of node.pinned.splice(0)) this.#settle(job, lost);
      this.#drain();
      throw error;
    }
    if (this.#closed) {
      node.health?.stop();
      node.session?.kill();
      await host.close().catch(() => {});
    }
  }

  /** Runs the health check once on a node, pinned to it. */
  #probe(node: PoolNode): Promise<unknown> {
    const health = this.#options.healthCheck!;
    const job = this.#makeJob(health.fn(), node.index);
    job.probe = true;
    job.attempts = Infinity;
    job.timeout = health.timeout;
    return this.#submit(job);
  }

  /** Opens the transport to a machine. */
  async #connect(endpoint: Endpoint, index: number): Promise<Host> {
    if (endpoint.kind === "local") return new LocalHost(endpoint.dir);
    const target = `${endpoint.user}@${endpoint.host}:${endpoint.port}`;
    try {
      const { dialSsh } = await sshTransport();
      return await dialSsh(endpoint, 5);
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
        `Cannot install apt packages on ${this.provider.name} nodes: they are processes on this machine. ` +
          `Install ${
            this.#options.image.apt.join(", ")
          } on this machine yourself and leave 'apt' out of the image, or use a provider with machines of its own`,
      );
    }
    const bundle = this.#bundle;
    const includes = this.#includes;
    // Named by the code's hash and the includes' paths, sizes and times.
    const key = await codeKey(bundle, includes);
    const codeDir = `${dir}/code/${key}`;
    const started = Date.now();
    this.#phase(index, "code", "started", started);
    const present = await host.exists(codeDir);
    if (!present) {
      await host.writeTree(codeDir, [
        ...bundle.files,
        ...await Promise.all(includes.map(async (f) => ({
          path: f.path,
          data: await Deno.readFile(f.file),
        }))),
        {
          path: ".skyward-hash",
          data: new TextEncoder().encode(bundle.hash),
        },
      ]);
    }
    this.#phase(index, "code", present ? "skipped" : "completed", started);
    // The node runs from the client's Deno cache, which the code's
    // dependencies were resolved into, with the code's lockfile frozen: a
    // task cannot fetch a package or rewrite the lockfile (see src/bootstrap/stage.ts).
    return {
      argv: workerArgv(
        Deno.execPath(),
        `${codeDir}/${bundle.node.config}`,
        WORKER_MAIN.protocol === "file:"
          ? decodeURIComponent(WORKER_MAIN.pathname)
          : WORKER_MAIN.href,
        ["--cached-only", "--frozen"],
      ),
      cwd: bundle.project ? `${codeDir}/${bundle.project}` : codeDir,
      env: {
        ...this.#options.image?.env,
        SKYWARD_CODE_DIR: codeDir,
        ...(bundle.node.importHosts.length
          ? { SKYWARD_IMPORT_HOSTS: bundle.node.importHosts.join(",") }
          : {}),
      },
    };
  }

  /** Runs the bootstrap script on a remote node. */
  async #bootstrapRemote(index: number, host: Host): Promise<WorkerLaunch> {
    // One plan for every node: the bootstrap caches its preparation per plan.
    this.#plan ??= librarySource().then((lib) => ({
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
        "--frozen",
      ]),
      cwd: result.projectDir,
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
    // An idle worker does not keep the program alive: the pool does, while
    // it works (see #checkKeepAlive).
    channel.unref?.();
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
    node.hello = { pid: hello.pid, hostname: hello.hostname };
    // A worker started with an older view of the cluster learns the current one.
    node.view = "";
    this.#announce();
    // A node waiting for its first health check is ready once it passes.
    if (!node.gated) {
      this.#emit({
        type: "NodeReady",
        node: node.index,
        instance: node.instance.id,
        pid: hello.pid,
        hostname: hello.hostname,
      });
    }
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
    // A node given up (its bring-up failed, or it left) is not restarted.
    if (node.dead !== undefined) return;
    reason = node.unhealthy ?? reason;
    node.health?.stop();
    this.#emit({ type: "NodeLost", node: node.index, reason });
    const retry: Job[] = [];
    for (const job of node.running) {
      job.node = undefined;
      // A job whose streams began cannot be sent again: it fails instead.
      if (
        job.attempts < this.#options.retryOnInterruption &&
        !job.call?.unrepeatable
      ) {
        job.attempts++;
        job.timer?.();
        retry.push(job);
      } else {
        // Settled without its node (which is not to count it as done), so
        // its TaskFailed is reported here.
        const error = new NodeLostError(node.index, reason);
        this.#emit({
          type: "TaskFailed",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs: performance.now() - job.sentAt,
          error: error.name,
          message: error.message,
        });
        this.#settle(job, error);
      }
    }
    node.running.clear();
    for (const job of retry) {
      if (job.pin !== undefined) node.pinned.unshift(job);
    }
    const now = performance.now();
    for (const job of retry) job.queuedAt = now;
    this.#scheduler.requeue(retry.filter((j) => j.pin === undefined));
    if (node.retiring) {
      // It was leaving anyway: its tasks go to the others.
      node.dead = reason;
      for (const job of node.pinned.splice(0)) {
        this.#settle(job, new NodeLostError(node.index, reason));
      }
      node.whenIdle?.();
      this.#drain();
      return;
    }
    this.#drain();
    this.#watchStarvation();
    this.#restart(node, reason);
  }

  async #restart(node: PoolNode, reason: string): Promise<void> {
    while (!this.#closed && !node.retiring && node.restarts < MAX_RESTARTS) {
      node.restarts++;
      try {
        if (await this.#replaceIfGone(node)) return;
        await this.#startWorker(node);
        if (!node.gated) node.health?.start();
        return;
      } catch (error) {
        log.warn("Node {node} could not restart its worker: {error}", {
          node: node.index,
          error,
        });
        await new Promise((r) => setTimeout(r, 250 * 2 ** node.restarts));
      }
    }
    if (this.#closed || node.retiring) return;
    // The node is gone for good: its pinned tasks cannot run anywhere else.
    node.dead = reason;
    for (const job of node.pinned.splice(0)) {
      this.#settle(job, new NodeLostError(node.index, reason));
    }
    if (this.#instances.delete(node.instance.id)) {
      await this.provider.terminate(this.#cluster, [node.instance.id]).catch(
        () => {},
      );
    }
    this.#announce();
    if (this.#scaling.max > this.#scaling.min) {
      // An elastic pool starts another node instead.
      this.#scale();
      this.#watchStarvation();
      return;
    }
    if (!this.#nodes.some((n) => n && !n.dead)) {
      this.#abandoned = { node: node.index, reason };
      const error = this.#hopeless();
      if (error) {
        for (const job of [...this.#jobs.values()]) this.#settle(job, error);
      }
    }
    this.#watchStarvation();
  }

  /**
   * Replaces a node whose machine the provider took back (a spot
   * interruption, or a machine terminated under it), or that failed its
   * health checks: provisions a new machine and brings it up at the lowest
   * free rank (the lost node's own, unless a lower one is free). Says
   * whether it did; `false` when the machine is still there and healthy.
   * An unhealthy machine is released only once its replacement was
   * launched, so that the provider does not hand the same one back.
   */
  async #replaceIfGone(node: PoolNode): Promise<boolean> {
    const previous = node.instance;
    const unhealthy = node.unhealthy !== undefined;
    if (!unhealthy) {
      const current = await this.provider.getInstance(
        this.#cluster,
        previous.id,
      )
        .catch(() => previous);
      if (current && current.status !== "terminated") return false;
    }
    const release = async () => {
      if (!this.#instances.delete(previous.id)) return;
      if (!unhealthy) {
        this.#emit({
          type: "InstancePreempted",
          node: node.index,
          instance: previous.id,
        });
      }
      node.session?.kill();
      await node.host.close().catch(() => {});
      await this.provider.terminate(this.#cluster, [previous.id]).catch(
        () => {},
      );
    };
    if (!unhealthy) await release();
    if (this.#closed) return true;
    let replacement: Instance | undefined;
    try {
      [replacement] = await this.#launch(1);
    } finally {
      if (unhealthy) await release();
    }
    if (!replacement) {
      throw new ProvisioningError(
        `${this.provider.name} launched no machine to replace node ${node.index}`,
      );
    }
    // The lost node's rank is free for its replacement, as is any lower one.
    const index = await this.#join(replacement, node.index);
    const fresh = this.#nodes[index]!;
    fresh.restarts = unhealthy ? node.restarts : 0;
    if (index !== node.index && this.#nodes[node.index] === node) {
      this.#nodes[node.index] = undefined;
    }
    node.dead = `replaced by node ${index}`;
    fresh.pinned.push(...node.pinned.splice(0));
    this.#emit({
      type: "InstanceReplaced",
      node: index,
      previous: previous.id,
      instance: replacement.id,
    });
    this.#announce();
    if (this.#closed) return true;
    this.#drain();
    return true;
  }

  /**
   * Grows or shrinks the pool to `nodes` nodes, which become its `min` (and
   * its `max`, when above it): an elastic pool keeps scaling between the
   * two. Shrinking retires idle nodes first, then the highest ranks; a
   * retired node takes no new task, finishes the ones it holds, and then
   * leaves, so no task is lost. Resolves once the new nodes are ready, or
   * the retired ones released.
   *
   * @param nodes How many nodes the pool should have.
   * @returns Once the pool has that many.
   * @throws {RangeError} (as a rejection) When `nodes` is not a non-negative integer.
   * @throws {ProvisioningError} (as a rejection) When some new nodes could not be started.
   * @throws {PoolClosedError} (as a rejection) When the pool is closed.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * await pool.resize(2);
   * console.log(pool.size); // 2
   * await pool.resize(1);
   * console.log(await pool.run(square(3)), pool.size); // 9 1
   * ```
   */
  async resize(nodes: number): Promise<void> {
    if (!Number.isInteger(nodes) || nodes < 0) {
      throw new RangeError(
        `Cannot resize pool: 'nodes' must be a non-negative integer, got ${
          show(nodes)
        }`,
      );
    }
    const limit = nodeLimitOf(this.#provider);
    if (nodes > limit.max) {
      throw new RangeError(
        `Cannot resize pool to ${nodes} nodes: ${this.#provider.name} allows at most ${limit.max} ` +
          `(${limit.reason})`,
      );
    }
    if (this.#closed) throw new PoolClosedError();
    const release = this.#hold();
    try {
      await this.#resize(nodes);
    } finally {
      release();
    }
  }

  async #resize(nodes: number): Promise<void> {
    await Promise.allSettled(this.#growing);
    const previous = this.#live();
    this.#scaling.min = nodes;
    this.#scaling.max = Math.max(this.#scaling.max, nodes);
    if (this.#scaling.max > nodes) this.#watchScaling();
    if (nodes === previous) return;
    this.#emit({ type: "PoolResized", previous, nodes, reason: "resize" });
    if (nodes > previous) return await this.#grow(nodes - previous);
    const retiring = this.#retirees(previous - nodes).map((node) =>
      this.#retire(node, "resize")
    );
    await Promise.all(retiring);
  }

  /** Nodes held and not leaving: ready, starting or restarting. */
  #live(): number {
    let live = this.#joining.size + this.#provisioning;
    for (const [rank, node] of this.#nodes.entries()) {
      if (node && !node.dead && !node.retiring && !this.#joining.has(rank)) {
        live++;
      }
    }
    return live;
  }

  /** The nodes to retire first: idle ones, then busy ones, highest rank first. */
  #retirees(count: number): PoolNode[] {
    const candidates = this.#nodes.filter((n, rank): n is PoolNode =>
      n !== undefined && !n.dead && !n.retiring && !this.#joining.has(rank)
    );
    const ready = candidates.filter((n) => isReady(n)).reverse();
    const idle = ready.filter((n) => !isBusy(n));
    const busy = ready.filter((n) => isBusy(n));
    // Nodes restarting their worker go last.
    const down = candidates.filter((n) => !isReady(n)).reverse();
    return [...idle, ...busy, ...down].slice(0, count);
  }

  /** Launches `count` machines and brings them in; rejects when some did not come up. */
  #grow(count: number): Promise<void> {
    this.#lastAdded = performance.now();
    const growing = (async () => {
      let instances: Instance[];
      this.#provisioning += count;
      try {
        instances = await this.#launch(count);
      } catch (error) {
        this.#provisioning -= count;
        this.#starved(error);
        throw error;
      }
      this.#provisioning -= count;
      if (this.#closed) {
        await this.provider.terminate(this.#cluster, instances.map((i) => i.id))
          .catch(() => {});
        throw new PoolClosedError();
      }
      const results = await Promise.allSettled(
        instances.map((instance) => this.#join(instance)),
      );
      const failed = results.flatMap((r) =>
        r.status === "rejected" ? [r.reason] : []
      );
      if (failed.length > 0 || instances.length < count) {
        const started = instances.length - failed.length;
        const error = new ProvisioningError(
          `Cannot add ${count} node(s) on ${this.provider.name}: ${started} started${
            failed.length > 0
              ? `; ${
                failed[0] instanceof Error
                  ? failed[0].message
                  : String(failed[0])
              }`
              : ""
          }`,
          { cause: failed[0] },
        );
        this.#starved(error);
        throw error;
      }
    })();
    this.#growing.add(growing);
    growing.catch(() => {}).finally(() => this.#growing.delete(growing));
    return growing;
  }

  /**
   * Nodes could not be added: when the pool has none left, the tasks waiting
   * for one fail instead of waiting for ever.
   */
  #starved(error: unknown): void {
    if (this.#closed || this.#live() > 0) return;
    const failure = new ProvisioningError(
      `No node could be started to run the task: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
    for (const job of [...this.#jobs.values()]) {
      if (!job.probe) this.#settle(job, failure);
    }
  }

  /**
   * Takes a node out of the pool: it gets no new task, finishes those it
   * holds, then its worker stops and its machine is released.
   */
  async #retire(node: PoolNode, reason: "idle" | "resize"): Promise<void> {
    if (node.retiring || node.dead) return;
    node.retiring = true;
    node.health?.stop();
    if (node.running.size > 0 || node.pinned.length > 0) {
      await new Promise<void>((resolve) => node.whenIdle = resolve);
    }
    if (this.#closed) return;
    node.dead ??= "retired";
    await node.session?.close(new PoolClosedError("The node was retired"))
      .catch(() => {});
    await node.host.close().catch(() => {});
    if (this.#instances.delete(node.instance.id)) {
      await this.provider.terminate(this.#cluster, [node.instance.id]).catch(
        (error) =>
          log.warn("Cannot release the machine of node {node}: {error}", {
            node: node.index,
            error,
          }),
      );
    }
    if (this.#nodes[node.index] === node) this.#nodes[node.index] = undefined;
    this.#emit({
      type: "NodeRetired",
      node: node.index,
      instance: node.instance.id,
      reason,
    });
    this.#announce();
  }

  /** Runs the scaling policy from now on (an elastic pool). */
  #watchScaling(): void {
    if (this.#scaleTimer !== undefined || this.#closed) return;
    const { cooldown, idleTimeout } = this.#scaling;
    const tick = Math.min(
      1_000,
      Math.max(10, Math.min(cooldown || idleTimeout, idleTimeout) / 4),
    );
    this.#scaleTimer = setInterval(() => this.#scale(), tick);
    Deno.unrefTimer(this.#scaleTimer);
  }

  /** Runs the scaling policy at the end of this turn. */
  #scaleSoon(): void {
    if (this.#scalePending) return;
    this.#scalePending = true;
    queueMicrotask(() => {
      this.#scalePending = false;
      this.#scale();
    });
  }

  /** Applies the scaling policy once. */
  #scale(): void {
    if (this.#closed) return;
    // While tasks wait, the policy's timer keeps the program alive.
    if (this.#scaleTimer !== undefined) {
      if (this.#jobs.size > 0) Deno.refTimer(this.#scaleTimer);
      else Deno.unrefTimer(this.#scaleTimer);
    }
    const now = performance.now();
    const idle: { rank: number; since: number }[] = [];
    const ranks = [...this.#joining.keys()];
    for (const [rank, node] of this.#nodes.entries()) {
      if (
        node && !node.dead && !node.retiring && !this.#joining.has(rank)
      ) ranks.push(rank);
      if (
        takesWork(node) && !this.#joining.has(rank) && !isBusy(node)
      ) {
        idle.push({ rank, since: node.idleSince });
      }
    }
    const waiting = this.#scheduler.waiting();
    const live = this.#live();
    const plan = planScaling(this.#scaling, {
      now,
      live,
      starting: this.#joining.size + this.#provisioning,
      waiting,
      concurrency: this.#options.worker.concurrency,
      lastAdded: this.#lastAdded,
      ranks,
      idle,
    });
    if (plan.add > 0) {
      this.#emit({
        type: "PoolResized",
        previous: live,
        nodes: live + plan.add,
        reason: live < this.#scaling.min ? "min" : "queue",
      });
      this.#grow(plan.add).catch((error) =>
        log.warn("Cannot add {count} node(s): {error}", {
          count: plan.add,
          error,
        })
      );
    }
    if (plan.retire.length > 0) {
      this.#emit({
        type: "PoolResized",
        previous: live,
        nodes: live - plan.retire.length,
        reason: "idle",
      });
      for (const rank of plan.retire) this.#retire(this.#nodes[rank]!, "idle");
    }
  }

  // The scheduler and the cluster view as the node side calls them (health
  // probes, bring-up, loss, restart, scaling).

  #makeJob(task: Pending<unknown>, pin?: number): Job {
    return this.#scheduler.create(task, pin);
  }

  /** Queues a job (see `Scheduler.submit`); the health probes come in here too. */
  #submit(job: Job): Promise<unknown> {
    return this.#scheduler.submit(job);
  }

  #hopeless(): Error | undefined {
    return this.#scheduler.hopeless();
  }

  #watchStarvation(): void {
    this.#scheduler.watchStarvation();
  }

  #drain(): void {
    this.#scheduler.drain();
  }

  #settle(job: Job, error: Error | undefined, value?: unknown): void {
    this.#scheduler.settle(job, error, value);
  }

  #freeRank(also?: number): number {
    return this.#view.freeRank(also);
  }

  #clusterView(): View {
    return this.#view.view();
  }

  #announce(): void {
    this.#view.announce();
  }

  /** Builds and queues the jobs of a task or group; rejects synchronously-built failures. */
  #dispatch<R>(
    task: Dispatchable<R>,
    options: RunOptions,
  ): { jobs: Job[]; results: Promise<unknown>[] } {
    if (!isGroup(task) && !isPending(task)) {
      throw new TypeError(
        `Cannot run ${
          task === null ? "null" : typeof task
        }: expected a task (call a compute to ` +
          `build one) or a group from sky.gather() or sky.all()`,
      );
    }
    const tasks = isGroup(task)
      ? (task as Group<R>).tasks
      : [task as Pending<unknown>];
    const jobs = this.#jobsOf(tasks, options.node);
    return { jobs, results: this.#scheduler.submitAll(jobs, options.signal) };
  }

  /** Jobs for tasks, pinned to node `pin` when given: a node of the pool. */
  #jobsOf(tasks: readonly Pending<unknown>[], pin: number | undefined): Job[] {
    const absent = pin === undefined ? undefined : this.#view.pinError(pin);
    if (absent) throw absent;
    return tasks.map((t) => this.#makeJob(t, pin));
  }

  /**
   * Runs a task, or a group of tasks, and resolves to the result: `R` for a
   * task, `R[]` for `gather`, a typed tuple for `all`. When one task of a
   * group fails, the others are cancelled and the error is rethrown.
   *
   * A task whose result streams (an async generator compute, or one that
   * returns an `AsyncIterable` or a `ReadableStream`) resolves to an
   * `AsyncIterable` of the items as the worker yields them, as soon as the
   * function has returned; the returned promise can also be iterated
   * directly: `for await (const x of pool.run(gen()))`. Leaving the loop
   * early returns the generator on the worker (its `finally` runs there)
   * and waits for it. An error thrown mid-stream reaches the loop after the
   * items yielded before it; a node lost mid-stream fails the loop with
   * `NodeLostError` (a streaming task is never sent again). Arguments that
   * are `AsyncIterable`s or `ReadableStream`s stream to the worker, with
   * backpressure, as the same kind.
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
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * const n: number = await pool.run(square(3)); // 9
   * const [a, b] = await pool.run(sky.all(square(1), square(2))); // [1, 4]
   * console.log(n, a, b);
   * ```
   *
   * @example Streaming
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { countdown } from "../../examples/streaming.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * for await (const n of pool.run(countdown(3))) console.log(n); // 3, 2, 1
   * ```
   */
  run<R>(task: Dispatchable<R>, options: RunOptions = {}): RunResult<R> {
    return runResult(this.#run(task, options));
  }

  async #run<R>(task: Dispatchable<R>, options: RunOptions): Promise<R> {
    const { jobs, results } = this.#dispatch(task, options);
    if (!isGroup(task)) return await results[0] as R;
    try {
      return await Promise.all(results) as R;
    } catch (error) {
      this.#scheduler.abortAll(jobs, GROUP_FAILED);
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
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
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
   * node index. Fails if any node's task fails. A streamed result gives one
   * iterable per node; a streamed argument reaches every node whole (read
   * once from its source, at the pace of the slowest node).
   *
   * @param task The task to run everywhere.
   * @returns One result per node, `results[i]` from node `i`.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { workerInfo } from "../../examples/broadcast.ts";
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
    // Every node that is up (admitted, not leaving), or restarting its worker.
    const nodes = this.#nodes.filter((n): n is PoolNode =>
      n !== undefined && !isGone(n) && n.session !== undefined &&
      !isGated(n) && !isLeaving(n)
    );
    if (this.#closed) throw new PoolClosedError();
    const hopeless = nodes.length === 0 ? this.#hopeless() : undefined;
    if (hopeless) throw hopeless;
    // A streamed argument is split: every node gets every item.
    const streamed = splitStreams(task.args);
    const copies = streamed &&
      teeArgs(task.args, streamed.streams, nodes.length);
    const tasks = nodes.map((_, k) => {
      if (!copies) return task as Pending<unknown>;
      const copy = task.compute(...copies[k]) as Pending<unknown>;
      return task.timeout === undefined ? copy : copy.withTimeout(task.timeout);
    });
    const jobs = nodes.map((node, k) => this.#makeJob(tasks[k], node.index));
    const results = this.#scheduler.submitAll(jobs, options.signal);
    try {
      return await Promise.all(results) as R[];
    } catch (error) {
      this.#scheduler.abortAll(jobs, GROUP_FAILED);
      throw error;
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
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
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
      this.#scheduler.abortAll(
        jobs,
        "cancelled: the stream was left early or failed",
      );
      for (const result of results) result.catch(() => {});
    }
  }

  /**
   * Applies a one-argument compute to every item, a bounded number in flight
   * at a time. Iterate the results as they come, or await them all.
   *
   * The inputs are read as they arrive (an async iterable of unknown
   * length, such as a queue or a socket, works), while fewer than a window
   * of results (twice the pool's task slots) is pending; each result is
   * yielded as soon as it is ready: the first of the pending ones in input
   * order, or any with `{ ordered: false }` (the JavaScript shape of
   * Modal's `.map` and Ray's `ray.wait`). A consumer that stops reading
   * holds the inputs back. A failed task ends the loop with its error;
   * leaving the loop cancels the tasks in flight.
   *
   * @param compute The compute to apply.
   * @param items The inputs: an array, any iterable, or an async iterable.
   * @param options `ordered` (default `true`): results in input order, else as they complete.
   * @returns The results.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
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
    const results = () =>
      mapResults<A, R>(items, (item) => {
        const [job] = this.#jobsOf(
          [compute(item) as Pending<unknown>],
          options.node,
        );
        return {
          result: this.#submit(job),
          cancel: (reason) => this.#scheduler.abort(job, reason),
        };
      }, {
        // An elastic pool may grow: enough tasks are in flight to make it.
        window: Math.max(
          2,
          Math.max(this.size, this.#scaling.max) * this.#scheduler.capacity() *
            2,
        ),
        ordered: options.ordered ?? true,
        signal: options.signal,
        aborted: () => new TaskCancelledError(compute.id.name, "aborted"),
      });
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
    if (!this.#closing) {
      const release = this.#hold();
      this.#closing = this.#close().finally(release);
    }
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#scaleTimer);
    for (const node of this.#nodes) node?.health?.stop();
    this.#heartbeat?.stop();
    this.#ttl?.();
    const closed = new PoolClosedError(
      "The pool was closed before the task finished",
    );
    this.#scheduler.close(closed);
    const errors: unknown[] = [];
    await Promise.all(
      this.#nodes.filter((n): n is PoolNode => n !== undefined).map(
        async (node) => {
          try {
            await node.session?.close(closed);
            await node.host.close();
          } catch (error) {
            errors.push(error);
          }
        },
      ),
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
    this.#hub.close();
    untrack(this);
    if (errors.length > 0) {
      throw new ProvisioningError(
        `Pool ${this.id} was not released completely: ${
          errors.map((e) => e instanceof Error ? e.message : String(e)).join(
            "; ",
          )
        }. Machines of cluster ${this.id} may be left on ${this.provider.name}. ${
          sweepAdvice(this.provider, this.id)
        }`,
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

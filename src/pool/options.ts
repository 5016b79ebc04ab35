/**
 * The pool's options: what {@linkcode ComputePool.start} accepts
 * ({@linkcode PoolOptions}) and what one dispatch accepts
 * ({@linkcode RunOptions}), the schema that validates them once, at the
 * edge, into the resolved form the rest of the pool uses, and the checks
 * made before anything is launched (node limits, the client's permissions).
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import type { Accelerator } from "../accelerators.ts";
import { onWorker } from "../compute.ts";
import { ConfigError } from "../errors.ts";
import type { PoolEvent } from "../events.ts";
import type { ResolvedImage } from "../image.ts";
import { show, unknownOption } from "../_options.ts";
import {
  DEFAULT_NODE_LIMIT,
  type NodeLimit,
  type Provider,
} from "../provider.ts";
import {
  hardwareSchema,
  isSpec,
  providerSchema,
  type Selection,
  type Spec,
  type SpecRequest,
} from "../spec.ts";
import { type BudgetOptions, budgetSchema } from "./budget.ts";
import { type DeadManSwitchOptions, deadManSwitchSchema } from "./deadman.ts";
import type { CollectionsOption } from "../collections/backend.ts";
import { type NodesOptions, nodesSchema } from "./elastic.ts";
import { type HealthCheckOptions, healthCheckSchema } from "./health.ts";
import {
  type DashboardOptions,
  dashboardSchema,
  eventLogSchema,
} from "../dashboard/serve.ts";

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
   * The most the pool may spend, in US dollars, counted from each machine's
   * price per hour over the time the pool holds it: `{ maxCost, warnAt }`.
   * Launches and scale-ups that would pass `maxCost` within the next
   * `costInterval` are refused (`BudgetExceededError`); past `warnAt` the
   * pool reports `BudgetWarning`; at `maxCost` it reports `BudgetExceeded`,
   * fails its queued and running tasks with `BudgetExceededError` and
   * closes, releasing every machine. A spec's own `budget` replaces it when
   * that spec is chosen. Refused where no offer has a price (give
   * `sky.Local`, `sky.SSH` or `sky.Container` a `pricePerHour`).
   * @default no budget
   */
  budget?: BudgetOptions;
  /**
   * How often the pool reports its spend (a `Cost` event) while its
   * machines have a price, and the horizon a launch must fit the budget
   * over, in milliseconds.
   * @default 60_000
   */
  costInterval?: number;
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
  /**
   * Cancels the start: aborting it stops provisioning, releases every
   * machine launched so far, and `ComputePool.start` rejects with the
   * signal's reason. It has no effect once the pool has started (close the
   * pool instead). `provisionTimeout` still applies; combine deadlines of
   * your own with `AbortSignal.timeout` or `AbortSignal.any`.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   *
   * const start = sky.ComputePool.start({
   *   provider: sky.Local(),
   *   console: "silent",
   *   signal: AbortSignal.abort(new Error("not needed after all")),
   * });
   * await start.catch((e) => console.log(e.message)); // not needed after all
   * ```
   *
   * @default none
   */
  signal?: AbortSignal;
  /**
   * Serves a live dashboard of the pool on 127.0.0.1 (nodes, tasks and
   * their throughput, bootstrap phases, logs, spend): `true` for a free
   * port, or `{ port }`. Its address holds a random token; it is printed
   * once (unless `console: "silent"`) and is `pool.dashboardUrl`. The
   * server stops when the pool closes.
   * @default no dashboard
   */
  dashboard?: boolean | DashboardOptions;
  /**
   * A file the pool writes its events to, one JSON object a line, as they
   * happen (created, or emptied, at the start): `skyward dashboard <file>`
   * serves the dashboard from it, also while the program runs.
   * @default no file
   */
  eventLog?: string;
  /**
   * Where the pool's collections (`sky.dict`, `sky.queue`, …, and
   * `pool.dict(...)`) live. By default the client holds them and serves the
   * nodes over the pool's own connections: nothing to install, no port
   * opened, on every provider; they last as long as the pool.
   * @default embedded in the client
   */
  collections?: CollectionsOption;
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
  budget: budgetSchema.optional(),
  costInterval: positiveInt.optional(),
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
  signal: z.custom<AbortSignal>(
    (s) => s instanceof AbortSignal,
    "must be an AbortSignal",
  ).optional(),
  dashboard: dashboardSchema,
  eventLog: eventLogSchema,
  collections: z.custom<CollectionsOption>(
    (c) =>
      typeof c === "object" && c !== null &&
      typeof (c as { open?: unknown }).open === "function",
    "must be made with sky.Redis(...), or left out for the embedded default",
  ).optional(),
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

/**
 * The options of `ComputePool.start` once validated, with their defaults:
 * the form the rest of the pool uses.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { resolveOptions, type ResolvedOptions } from "./options.ts";
 *
 * const options: ResolvedOptions = resolveOptions({ provider: sky.Local() });
 * console.log(options.worker.concurrency); // 1
 * ```
 */
export type ResolvedOptions = z.infer<typeof optionsSchema>;

/**
 * Validates the options of `ComputePool.start` once, into their resolved
 * form.
 *
 * @param options What the caller gave.
 * @returns The options with their defaults.
 * @throws {ConfigError} Naming each option to fix and the value given.
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 *
 * try {
 *   resolveOptions({ nodes: -1 });
 * } catch (e) {
 *   console.log((e as Error).message); // Cannot start pool: 'nodes' ...
 * }
 * ```
 */
export function resolveOptions(options: unknown): ResolvedOptions {
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

/**
 * How many nodes a provider can hold.
 *
 * @param provider The provider.
 * @returns Its own limit, or the default one.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { nodeLimitOf } from "./options.ts";
 *
 * console.log(nodeLimitOf(sky.Local()).max > 0); // true
 * ```
 */
export function nodeLimitOf(provider: Provider<any>): NodeLimit {
  return provider.nodeLimit ?? DEFAULT_NODE_LIMIT;
}

/**
 * Refuses, before anything is launched, a pool asking a provider for more
 * nodes than it can hold.
 *
 * @param options The resolved options.
 * @throws {ConfigError} Naming the option, the count and the provider's limit.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { checkNodeLimits, resolveOptions } from "./options.ts";
 *
 * checkNodeLimits(resolveOptions({ provider: sky.Local(), nodes: 2 })); // fine
 * ```
 */
export function checkNodeLimits(options: ResolvedOptions): void {
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
 *
 * @param options The resolved options.
 * @throws {ConfigError} Naming each missing `--allow-…` flag.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { checkClientPermissions, resolveOptions } from "./options.ts";
 *
 * checkClientPermissions(resolveOptions({ provider: sky.Local() })); // under -A: fine
 * ```
 */
export function checkClientPermissions(options: ResolvedOptions): void {
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

/**
 * What to ask each provider for: one request per spec (or one for the
 * pool's provider), the pool's hardware options being the defaults of each.
 *
 * @param options The resolved options.
 * @param clusterId The pool's id, the cluster's name at the provider.
 * @returns The requests whose offers are ranked.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { resolveOptions, specRequests } from "./options.ts";
 *
 * const [request] = specRequests(resolveOptions({ provider: sky.Local(), nodes: 2 }), "sky-1");
 * console.log(request.nodes, request.spec.clusterId); // 2 sky-1
 * ```
 */
export function specRequests(
  options: ResolvedOptions,
  clusterId: string,
): SpecRequest[] {
  const wishes: (Partial<Spec> & Pick<Spec, "provider">)[] = options.specs ??
    [{ provider: options.provider! }];
  return wishes.map((wish, i) => {
    const count = wish.nodes ?? options.nodes.desired;
    const budget = wish.budget ?? options.budget;
    return {
      provider: wish.provider,
      nodes: count,
      ...budget && {
        budget,
        budgetOption: wish.budget ? `specs[${i}].budget` : "budget",
      },
      spec: {
        clusterId,
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
}

/**
 * Refuses to start a pool while a worker imports the module that starts it
 * (a missing `import.meta.main` guard), naming the place of the call.
 *
 * @throws {ConfigError} On a worker, saying how to guard the code.
 *
 * @example
 * ```ts
 * import { checkNotOnWorker } from "./options.ts";
 *
 * checkNotOnWorker(); // on the client: fine
 * ```
 */
export function checkNotOnWorker(): void {
  if (!onWorker()) return;
  const caller = new Error().stack?.split("\n").slice(2).find((l) =>
    !l.includes("/src/pool/")
  )?.trim();
  throw new ConfigError(
    `ComputePool.start() was called while a worker imported your module (${
      caller ?? "unknown place"
    }). ` +
      `Put the code that starts pools under \`if (import.meta.main) { ... }\`, so that ` +
      `importing the module only defines its computes.`,
  );
}

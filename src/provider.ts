/**
 * The provider contract. A provider knows machines, not functions: it finds
 * offers, prepares a cluster (keys, network), launches and terminates
 * machines, and tells how to reach them. Everything after a machine is
 * reachable — shipping code, starting the worker, scheduling — is common code
 * that never knows which provider it runs on.
 *
 * To add a cloud, implement {@linkcode Provider} and nothing else.
 *
 * @module
 */
import type { Accelerator } from "./accelerators.ts";

/** What the pool asks a provider for. */
export interface ClusterSpec {
  /** The pool's id; providers tag every resource with it. */
  clusterId: string;
  /** How many nodes the pool wants at first. */
  nodes: number;
  /** The allocation strategy. */
  allocation: "spot" | "on-demand" | "spot-if-available" | "cheapest";
  /** Upper bound on the price of one machine, in dollars per hour. */
  maxHourlyCost?: number;
  /** The accelerators each machine needs; providers without any refuse it. */
  accelerator?: Accelerator;
  /** Least vCPUs per machine. */
  vcpus?: number;
  /** Least memory per machine, in GiB. */
  memoryGb?: number;
  /** Size of each machine's root disk, in GiB. */
  diskGb?: number;
  /** The CPU architecture of the machines. */
  architecture?: "x86_64" | "arm64";
  /** The region to launch in, where the provider has regions. */
  region?: string;
}

/**
 * How many nodes one pool may hold on a provider, and why.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 *
 * const limit: sky.NodeLimit | undefined = sky.Local().nodeLimit;
 * console.log(limit?.max, limit?.reason);
 * ```
 */
export interface NodeLimit {
  /** The most nodes. */
  max: number;
  /** Why, for the message that refuses more: "sky.SSH() was given 3 hosts". */
  reason: string;
}

/**
 * The bound of providers that state none: no pool of this library launches
 * more than 1,000 machines — far above a cloud account's default quotas,
 * and low enough that a typo such as `nodes: 1e9` is refused before a
 * single request is made.
 *
 * @example
 * ```ts
 * import { DEFAULT_NODE_LIMIT } from "./provider.ts";
 *
 * console.log(DEFAULT_NODE_LIMIT.max); // 1000
 * ```
 */
export const DEFAULT_NODE_LIMIT: NodeLimit = {
  max: 1_000,
  reason: "a pool holds at most 1,000 machines",
};

/** A kind of machine a provider can launch, with its price. */
export interface Offer {
  /** The provider's name. */
  provider: string;
  /** The provider's name for the machine type. */
  instanceType: string;
  /** The region or location. */
  region?: string;
  /** vCPUs per machine. */
  vcpus?: number;
  /** Memory per machine in GiB. */
  memoryGb?: number;
  /** Spot price in dollars per hour, when spot is offered. */
  spotPrice?: number;
  /** On-demand price in dollars per hour, when on-demand is offered. */
  onDemandPrice?: number;
  /** The machine's accelerators, when it has any. */
  accelerator?: { name: string; count: number; memoryGb?: number };
  /** The machine's CPU architecture. */
  architecture?: "x86_64" | "arm64";
}

/** How the client reaches a machine. */
export type Endpoint =
  | {
    /** A directory on this machine, reached by child processes. */
    kind: "local";
    dir: string;
  }
  | {
    /** A machine reached over SSH. */
    kind: "ssh";
    host: string;
    port: number;
    user: string;
    /** The private key, as text. Never logged. */
    privateKey: string;
    /** The host's public key, when the provider knows it. */
    hostKey?: string;
    /** A `known_hosts` file to check the host's key against, when present. */
    knownHostsPath?: string;
  };

/** A machine as the provider sees it. */
export interface Instance {
  /** The provider's id of the machine. */
  id: string;
  /** Its state. `"running"` machines have an endpoint. */
  status: "pending" | "running" | "terminated";
  /** How to reach it, once running. */
  endpoint?: Endpoint;
  /** The address other nodes of the cluster reach it at, if they can. */
  privateAddress?: string;
  /** Whether it is a spot (interruptible) machine. */
  spot?: boolean;
  /**
   * What the machine costs, in dollars per hour, where the provider knows it
   * better than the offer the pool chose (the bid it placed, another offer
   * it fell back to).
   * @default the chosen offer's spot or on-demand price
   */
  pricePerHour?: number;
}

/**
 * A cloud, or anything else that hands out machines.
 *
 * The pool calls, in order: `offers` (to choose), `prepare` (once per pool),
 * `provision` (to launch), `getInstance` (until each is running),
 * `terminate` (for machines it gives back) and `teardown` (once, at the end,
 * also after a failure). Each must be safe to call again after a failure:
 * state lives with the provider, found by the cluster id.
 *
 * When a node's worker is lost, the pool asks `getInstance`: a machine that
 * is `"terminated"` (or unknown) was taken back (e.g. a spot interruption),
 * and the pool `provision`s a replacement for that node.
 *
 * Errors: a spec the provider cannot meet is a `ConfigError` (e.g. an
 * accelerator asked of a provider without any), no capacity a
 * `NoOffersError`, missing or rejected credentials a `ConfigError` naming
 * what to set.
 *
 * @typeParam C The provider's own record of a prepared cluster.
 */
export interface Provider<C = unknown> {
  /** A short name, e.g. `"local"`, `"aws"`. */
  readonly name: string;
  /**
   * The most nodes one pool may hold on this provider, and why: a pool that
   * asks for more (`nodes`, `{ desired, min, max }`, `resize(n)`) is refused
   * at once, quoting the value. Providers that state none get
   * {@linkcode DEFAULT_NODE_LIMIT}.
   */
  readonly nodeLimit?: NodeLimit;
  /**
   * A shell command that powers one of its machines off from the inside, so
   * that it stops billing (e.g. `sudo -n shutdown -h now` on a cloud whose
   * machines terminate when shut down). A worker whose client is gone runs
   * it after the pool's grace period. Leave it out for machines that must
   * not be powered off (local processes, your own hosts).
   */
  readonly powerOffCommand?: string;
  /**
   * Whether the machines of one cluster reach each other on a private
   * network (what `Instance.privateAddress` is for). `false` for clouds whose
   * machines are reached only from outside, one by one (RunPod, Vast.ai):
   * what needs one node to serve the others (e.g. `sky.Redis({ on: "head" })`)
   * is refused there.
   *
   * @default {true}
   */
  readonly privateNetwork?: boolean;
  /**
   * What to run to remove what a cluster may have left here, for messages
   * after a teardown that could not finish (e.g. a CLI command naming the
   * cluster). Every provider that can leave something has one; see
   * {@linkcode sweepAdvice}.
   */
  sweepHint?(clusterId: string): string;
  /**
   * Removes what pools left here (found by the tags or names the provider
   * gives its resources): after a crash, a second interrupt, or a teardown
   * that failed. What `skyward cleanup --provider <name>` calls. Every
   * provider that can leave something has one.
   *
   * @param options Which cluster, how old, or only a report. An option the
   *   provider cannot honour is refused with a `ConfigError` naming it.
   * @returns What was removed, or would be on a dry run, by kind.
   */
  cleanup?(options?: ProviderCleanupOptions): Promise<ProviderCleanupReport>;
  /** The offers that could satisfy the spec, best first: the pool takes the first. */
  offers(spec: ClusterSpec): Promise<Offer[]>;
  /** Creates what the cluster's machines need (keys, network) and returns its record. */
  prepare(spec: ClusterSpec, offer: Offer): Promise<C>;
  /** Launches `count` machines. May return fewer than asked; never more. */
  provision(cluster: C, count: number): Promise<Instance[]>;
  /** The machine's current state, or `undefined` when the provider no longer knows it. */
  getInstance(cluster: C, id: string): Promise<Instance | undefined>;
  /** Terminates machines. Machines already gone are not an error. */
  terminate(cluster: C, ids: string[]): Promise<void>;
  /** Removes what `prepare` created, and any machine of the cluster still there. */
  teardown(cluster: C): Promise<void>;
  /**
   * Makes one cheap authenticated call to check the credentials, for
   * `skyward providers`. Resolves to a short description of the account
   * (e.g. `"account 1234, balance $12.50"`); throws a `ConfigError` naming
   * what to set when credentials are missing or refused.
   */
  checkCredentials?(): Promise<string>;
}

/**
 * A provider as each cloud's factory returns it: a {@linkcode Provider}
 * that keeps the options it was made with, and whose `cleanup` takes that
 * provider's options and returns its own report, typed by kind (the shape
 * of `AwsProvider`, `RunPodProvider`, `ContainerProvider`, …).
 *
 * @typeParam C The provider's own record of a prepared cluster.
 * @typeParam O The options it keeps, as `provider.options`.
 * @typeParam CO What its `cleanup` takes.
 * @typeParam R What its `cleanup` found and removed.
 *
 * @example
 * ```ts
 * import type { ProviderWithCleanup } from "./provider.ts";
 *
 * type MyProvider = ProviderWithCleanup<
 *   { id: string },
 *   { token: string },
 *   { cluster?: string },
 *   { machines: string[] }
 * >;
 * const sweep = (p: MyProvider) => p.cleanup({ cluster: "sky-1a2b" });
 * console.log(typeof sweep);
 * ```
 */
export type ProviderWithCleanup<
  C,
  O,
  CO extends ProviderCleanupOptions,
  R extends ProviderCleanupReport,
> = Omit<Provider<C>, "cleanup"> & {
  /** The options it was made with. */
  readonly options: O;
  /**
   * Removes what pools left here; see {@linkcode Provider.cleanup}.
   *
   * @param options Which cluster, how old, or only a report.
   * @returns What was removed, or would be on a dry run, by kind.
   */
  cleanup(options?: CO): Promise<R>;
};

/**
 * What every provider's `cleanup` takes; a provider may take more
 * (Container `all` and `caches`).
 *
 * @example
 * ```ts
 * import type { ProviderCleanupOptions } from "./provider.ts";
 *
 * const scope: ProviderCleanupOptions = { cluster: "sky-1a2b", dryRun: true };
 * console.log(scope.cluster);
 * ```
 */
export interface ProviderCleanupOptions {
  /**
   * Only this cluster's leftovers (a pool id, `sky-…`).
   * @default every Skyward cluster's — also those of pools still running
   */
  cluster?: string;
  /**
   * Only what was made at least this long ago, in ms. Providers that cannot
   * tell when something was made refuse it with a `ConfigError`.
   * @default 0
   */
  olderThan?: number;
  /**
   * Report what would be removed and remove nothing. Providers that cannot
   * list without removing refuse it with a `ConfigError`.
   * @default false
   */
  dryRun?: boolean;
  /**
   * Where to look, for providers with regions (AWS); others refuse it with
   * a `ConfigError`.
   * @default the provider's region
   */
  region?: string;
}

/**
 * What a `cleanup` found: for each kind of resource (`instances`,
 * `sshKeys`, `pods`, …) the ids removed, or that would be on a dry run;
 * `clusters`, where the provider can tell, the clusters they belonged to;
 * a text field says where it looked (AWS's `region`).
 *
 * @example
 * ```ts
 * import type { ProviderCleanupReport } from "./provider.ts";
 *
 * const report: ProviderCleanupReport = { clusters: ["sky-1"], instances: ["i-1"] };
 * console.log(Object.keys(report));
 * ```
 */
export type ProviderCleanupReport = {
  readonly [kind: string]: readonly string[] | string;
};

/** What becomes of the workers of a provider that has no sweep command. */
export const SELF_STOPPING =
  "its workers stop by themselves once their input closes or their client's heartbeat stops";

/**
 * What to tell a user when a pool's machines may be left on a provider:
 * the provider's sweep command for the cluster, or what happens to them
 * when it has none.
 *
 * @param provider The provider the pool ran on.
 * @param clusterId The pool's id.
 * @returns One sentence, for the end of an error message.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 * import { sweepAdvice } from "./provider.ts";
 *
 * console.log(sweepAdvice(sky.AWS({ region: "eu-west-1" }), "sky-1a2b"));
 * // "To remove them: deno run -A jsr:@skyward/skyward/cli cleanup --provider aws --region eu-west-1 --cluster sky-1a2b"
 * ```
 */
export function sweepAdvice(
  provider: Pick<Provider, "name" | "sweepHint">,
  clusterId: string,
): string {
  const hint = provider.sweepHint?.(clusterId);
  return hint
    ? `To remove them: ${hint}`
    : `Nothing of ${provider.name} outlives its client: ${SELF_STOPPING}.`;
}

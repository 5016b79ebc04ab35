/**
 * The events a pool reports, from provisioning to teardown.
 *
 * Events form a discriminated union on `type`; each carries `time` (epoch
 * milliseconds) and `pool` (the pool's id). The names follow the Python
 * Skyward's.
 *
 * Spend: `InstanceLaunched` and `NodeReady` carry the machine's
 * `pricePerHour` and `spot`; `Cost` (every `costInterval`) the spend so far,
 * the rate now and each machine's share; `BudgetWarning` and
 * `BudgetExceeded` the budget's thresholds, `BudgetLimited` a scale-up it
 * held back; `ClusterDestroyed` the total
 * `cost`. The dashboard reads these fields by name.
 *
 * @module
 */

/** A phase of the bootstrap script run on each node. */
export type BootstrapPhaseName =
  | "env"
  | "apt"
  | "deno"
  | "code"
  | "deps"
  | "worker";

/** What every event carries. */
export interface EventBase {
  /** When the event happened, in epoch milliseconds. */
  time: number;
  /** The id of the pool that reported it. */
  pool: string;
}

/** The provider prepared the cluster (keys, network) and is about to launch. */
export interface ClusterProvisioned extends EventBase {
  /** The event's type. */
  type: "ClusterProvisioned";
  /** The provider's name, e.g. `"local"`. */
  provider: string;
  /** The region, where the provider has regions. */
  region?: string;
  /** How many nodes were asked for. */
  nodes: number;
  /**
   * The accelerators of the offer chosen, when it has any: its name, with
   * the count when more than one (`"A100:8"`).
   */
  accelerator?: string;
}

/** A machine was asked for. */
export interface InstanceLaunched extends EventBase {
  /** The event's type. */
  type: "InstanceLaunched";
  /** The node's index. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
  /**
   * What the machine costs, in dollars per hour: the price of the offer it
   * was launched on (its spot or on-demand price). Absent when the provider
   * states none (`sky.SSH()` without `pricePerHour`).
   */
  pricePerHour?: number;
  /** Whether it is a spot (interruptible) machine, when known. */
  spot?: boolean;
}

/** A machine is running and has an address. */
export interface InstanceRunning extends EventBase {
  /** The event's type. */
  type: "InstanceRunning";
  /** The node's index. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
  /** The address the client reaches it at. */
  address: string;
}

/** A machine is reachable; its bootstrap starts. */
export interface InstanceProvisioned extends EventBase {
  /** The event's type. */
  type: "InstanceProvisioned";
  /** The node's index. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
}

/** A phase of the bootstrap script started, completed, was skipped or failed. */
export interface BootstrapPhase extends EventBase {
  /** The event's type. */
  type: "BootstrapPhase";
  /** The node's index. */
  node: number;
  /** The bootstrap phase. */
  phase: BootstrapPhaseName;
  /** What happened to the phase. */
  status: "started" | "completed" | "skipped" | "failed";
  /** Time spent in the phase so far, in milliseconds. */
  elapsedMs: number;
  /** The tail of the phase's output, when it failed. */
  output?: string;
}

/** Every phase of the bootstrap completed. */
export interface InstanceBootstrapped extends EventBase {
  /** The event's type. */
  type: "InstanceBootstrapped";
  /** The node's index. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
  /** Time taken, in milliseconds. */
  elapsedMs: number;
}

/** A node's worker answered the handshake and takes tasks. */
export interface NodeReady extends EventBase {
  /** The event's type. */
  type: "NodeReady";
  /** The node's index. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
  /** The worker's process id on its machine. */
  pid: number;
  /** The machine's host name. */
  hostname: string;
  /** What the node's machine costs, in dollars per hour, when known (see {@linkcode InstanceLaunched}). */
  pricePerHour?: number;
  /** Whether it is a spot (interruptible) machine, when known. */
  spot?: boolean;
}

/** Enough nodes are ready for work to start. */
export interface ClusterReady extends EventBase {
  /** The event's type. */
  type: "ClusterReady";
  /** How many nodes. */
  nodes: number;
  /** From the start of the pool, in milliseconds. */
  elapsedMs: number;
}

/** A task was sent to a node. */
export interface TaskStarted extends EventBase {
  /** The event's type. */
  type: "TaskStarted";
  /** The task's id. */
  task: number;
  /** The compute's name. */
  name: string;
  /** The node's index. */
  node: number;
}

/** A task returned a value. */
export interface TaskCompleted extends EventBase {
  /** The event's type. */
  type: "TaskCompleted";
  /** The task's id. */
  task: number;
  /** The compute's name. */
  name: string;
  /** The node's index. */
  node: number;
  /** From sending to the result, in milliseconds. */
  elapsedMs: number;
}

/** A task failed: it threw, timed out, was cancelled or its node was lost. */
export interface TaskFailed extends EventBase {
  /** The event's type. */
  type: "TaskFailed";
  /** The task's id. */
  task: number;
  /** The compute's name. */
  name: string;
  /** The node's index. */
  node: number;
  /** Time taken, in milliseconds. */
  elapsedMs: number;
  /** The error's name, e.g. `"RemoteError"`. */
  error: string;
  /** The error's message. */
  message: string;
}

/** A node stopped answering. */
export interface NodeLost extends EventBase {
  /** The event's type. */
  type: "NodeLost";
  /** The node's index. */
  node: number;
  /** Why it was lost. */
  reason: string;
}

/** The provider took a machine back (spot interruption). */
export interface InstancePreempted extends EventBase {
  /** The event's type. */
  type: "InstancePreempted";
  /** The node's index. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
}

/** A lost node was replaced by a new machine. */
export interface InstanceReplaced extends EventBase {
  /** The event's type. */
  type: "InstanceReplaced";
  /** The node's index. */
  node: number;
  /** The machine that was lost. */
  previous: string;
  /** The provider's id of the machine. */
  instance: string;
}

/**
 * An elastic pool decided to change its number of nodes: it adds nodes for
 * waiting tasks (`"queue"`) or to get back to `min` (`"min"`), retires idle
 * ones (`"idle"`), or follows `pool.resize()` (`"resize"`).
 */
export interface PoolResized extends EventBase {
  /** The event's type. */
  type: "PoolResized";
  /** The nodes it held (ready, starting or restarting) before. */
  previous: number;
  /** The nodes it is going to hold. */
  nodes: number;
  /** Why. */
  reason: "queue" | "min" | "idle" | "resize";
}

/** A node left the pool: its tasks were done and its machine released. */
export interface NodeRetired extends EventBase {
  /** The event's type. */
  type: "NodeRetired";
  /** The node's index, free for a later node. */
  node: number;
  /** The provider's id of the machine. */
  instance: string;
  /** Why: it was idle past `idleTimeout`, or `pool.resize()` shrank the pool. */
  reason: "idle" | "resize";
}

/** A node's health check failed. */
export interface HealthCheckFailed extends EventBase {
  /** The event's type. */
  type: "HealthCheckFailed";
  /** The node's index. */
  node: number;
  /** Failed checks in a row, this one included. */
  failures: number;
  /** Why it failed. */
  message: string;
}

/** A line a task wrote with `console.*` on a node. */
export interface Log extends EventBase {
  /** The event's type. */
  type: "Log";
  /** The node's index. */
  node: number;
  /** The task that wrote it, when known. */
  task?: number;
  /** The stream the line was written to. */
  stream: "stdout" | "stderr";
  /** The line, without its newline. */
  line: string;
}

/** Every machine was released. */
export interface ClusterDestroyed extends EventBase {
  /** The event's type. */
  type: "ClusterDestroyed";
  /** Time taken, in milliseconds. */
  elapsedMs: number;
  /**
   * What the pool's machines cost in all, in dollars, from each launch to
   * its release; absent when none had a price.
   */
  cost?: number;
}

/**
 * What one machine has cost so far, in a {@linkcode Cost} event.
 *
 * @example
 * ```ts
 * import type { NodeCost } from "./events.ts";
 *
 * const share: NodeCost = { node: 0, instanceId: "i-0abc", pricePerHour: 0.53, spent: 0.27 };
 * console.log(share.spent);
 * ```
 */
export interface NodeCost {
  /** The node's index, or -1 while the machine is not yet a node (or no longer one). */
  node: number;
  /** The provider's id of the machine. */
  instanceId: string;
  /** Its price, in dollars per hour. */
  pricePerHour: number;
  /** Dollars spent on it so far, from its launch to now (or its release). */
  spent: number;
}

/**
 * What the pool has spent so far and spends now, reported every
 * `costInterval` while its machines have a price. `nodes` lists the
 * machines held now; `spent` also counts those already released.
 *
 * @example
 * ```ts
 * import type { PoolEvent } from "./events.ts";
 *
 * const onEvent = (event: PoolEvent) => {
 *   if (event.type === "Cost") console.log(`$${event.spent.toFixed(2)} so far, $${event.ratePerHour}/h`);
 * };
 * onEvent({ type: "Cost", time: 0, pool: "p", spent: 0.42, ratePerHour: 1.06, nodes: [] });
 * ```
 */
export interface Cost extends EventBase {
  /** The event's type. */
  type: "Cost";
  /** Dollars spent so far, on every machine the pool launched. */
  spent: number;
  /** Dollars per hour now: the sum of the prices of the machines held. */
  ratePerHour: number;
  /** The machines held now. */
  nodes: NodeCost[];
}

/**
 * The spend passed the budget's `warnAt`: reported once per pool.
 *
 * @example
 * ```ts
 * import { formatEvent } from "./events.ts";
 *
 * console.log(formatEvent({ type: "BudgetWarning", time: 0, pool: "p", spent: 15, warnAt: 15, maxCost: 20 }));
 * ```
 */
export interface BudgetWarning extends EventBase {
  /** The event's type. */
  type: "BudgetWarning";
  /** Dollars spent so far. */
  spent: number;
  /** The budget's warning threshold, in dollars. */
  warnAt: number;
  /** The budget's cap, in dollars. */
  maxCost: number;
}

/**
 * An elastic pool wanted more nodes than its budget allows over the next
 * cost interval, and adds only `allowed` of the `wanted` (reported when the
 * budget starts holding it back, not at every try).
 *
 * @example
 * ```ts
 * import { formatEvent } from "./events.ts";
 *
 * console.log(formatEvent({
 *   type: "BudgetLimited", time: 0, pool: "p", wanted: 2, allowed: 0, spent: 0.85, maxCost: 1,
 * }));
 * ```
 */
export interface BudgetLimited extends EventBase {
  /** The event's type. */
  type: "BudgetLimited";
  /** The nodes the scaling policy wanted to add. */
  wanted: number;
  /** The nodes the budget allows to add. */
  allowed: number;
  /** Dollars spent so far. */
  spent: number;
  /** The budget's cap, in dollars. */
  maxCost: number;
}

/**
 * The spend reached the budget's `maxCost`: the pool fails its tasks with
 * `BudgetExceededError` and closes, releasing every machine.
 *
 * @example
 * ```ts
 * import { formatEvent } from "./events.ts";
 *
 * console.log(formatEvent({ type: "BudgetExceeded", time: 0, pool: "p", spent: 20, maxCost: 20 }));
 * ```
 */
export interface BudgetExceeded extends EventBase {
  /** The event's type. */
  type: "BudgetExceeded";
  /** Dollars spent so far. */
  spent: number;
  /** The budget's cap, in dollars. */
  maxCost: number;
}

/**
 * Any event a pool reports.
 *
 * @example
 * ```ts
 * import type { PoolEvent } from "./events.ts";
 *
 * function describe(event: PoolEvent): string {
 *   return event.type === "NodeReady" ? `node ${event.node} is ready` : event.type;
 * }
 * console.log(describe({ type: "ClusterDestroyed", time: 0, pool: "p", elapsedMs: 3 }));
 * ```
 */
export type PoolEvent =
  | ClusterProvisioned
  | InstanceLaunched
  | InstanceRunning
  | InstanceProvisioned
  | BootstrapPhase
  | InstanceBootstrapped
  | NodeReady
  | ClusterReady
  | TaskStarted
  | TaskCompleted
  | TaskFailed
  | NodeLost
  | InstancePreempted
  | InstanceReplaced
  | PoolResized
  | NodeRetired
  | HealthCheckFailed
  | Log
  | ClusterDestroyed
  | Cost
  | BudgetWarning
  | BudgetLimited
  | BudgetExceeded;

/** The name of an event type. */
export type PoolEventType = PoolEvent["type"];

/** An event before the pool stamps it with `time` and `pool`. */
export type EventInit = PoolEvent extends infer E
  ? E extends PoolEvent ? Omit<E, "time" | "pool"> : never
  : never;

/**
 * Dollars as the console prints them: cents, or four decimals below a cent
 * (`$0.42`, `$12.30`, `$0.0031`).
 *
 * @param dollars The amount.
 * @returns The amount with its `$`.
 *
 * @example
 * ```ts
 * import { formatDollars } from "./events.ts";
 *
 * console.log(formatDollars(0.4213)); // "$0.42"
 * console.log(formatDollars(0.0031)); // "$0.0031"
 * ```
 */
export function formatDollars(dollars: number): string {
  return dollars !== 0 && Math.abs(dollars) < 0.01
    ? `$${dollars.toFixed(4)}`
    : `$${dollars.toFixed(2)}`;
}

/** A machine's price, for its line; nothing for a machine that costs nothing. */
function price(event: { pricePerHour?: number; spot?: boolean }): string {
  if (!event.pricePerHour) return "";
  return ` (${formatDollars(event.pricePerHour)}/h${
    event.spot ? ", spot" : ""
  })`;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/**
 * The one-line description of an event that `console: "log"` prints, in the
 * seed's format: `[ClusterReady] Cluster ready with 2 node(s)`.
 *
 * @param event The event to describe.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatEvent } from "./events.ts";
 *
 * const line = formatEvent({ type: "ClusterReady", time: 0, pool: "p", nodes: 2, elapsedMs: 310 });
 * console.log(line); // "[ClusterReady] Cluster ready with 2 node(s) in 310ms"
 * ```
 */
export function formatEvent(event: PoolEvent): string {
  const text = (() => {
    switch (event.type) {
      case "ClusterProvisioned":
        // Local processes and your own hosts have no region of their own
        // ("local", "ssh"): "prepared on local in local" says nothing.
        return `Cluster prepared on ${event.provider}${
          event.region && event.region !== event.provider
            ? ` in ${event.region}`
            : ""
        } for ${event.nodes} node(s)${
          event.accelerator ? ` with ${event.accelerator}` : ""
        }`;
      case "InstanceLaunched":
        return `Launching instance ${event.instance} for node ${event.node}${
          price(event)
        }`;
      case "InstanceRunning":
        return `Instance ${event.instance} running (${event.address})`;
      case "InstanceProvisioned":
        return `Instance ${event.instance} provisioned, starting bootstrap`;
      case "BootstrapPhase":
        return `Node ${event.node}: phase '${event.phase}' ${event.status}${
          event.status === "started" ? "" : ` (${seconds(event.elapsedMs)})`
        }`;
      case "InstanceBootstrapped":
        return `Node ${event.node}: bootstrap complete (${
          seconds(event.elapsedMs)
        })`;
      case "NodeReady":
        return `Node ${event.node} ready (${event.hostname}, pid ${event.pid})`;
      case "ClusterReady":
        return `Cluster ready with ${event.nodes} node(s) in ${
          seconds(event.elapsedMs)
        }`;
      case "TaskStarted":
        return `Task ${event.task} '${event.name}' started on node ${event.node}`;
      case "TaskCompleted":
        return `Task ${event.task} '${event.name}' completed in ${
          seconds(event.elapsedMs)
        }`;
      case "TaskFailed":
        return `Task ${event.task} '${event.name}' failed on node ${event.node}: ${event.message}`;
      case "NodeLost":
        return `Node ${event.node} lost: ${event.reason}`;
      case "InstancePreempted":
        return `Instance ${event.instance} of node ${event.node} was preempted`;
      case "InstanceReplaced":
        return `Node ${event.node}: instance ${event.previous} replaced by ${event.instance}`;
      case "PoolResized":
        return `Pool resized from ${event.previous} to ${event.nodes} node(s) (${event.reason})`;
      case "NodeRetired":
        return `Node ${event.node} retired (${event.reason}), instance ${event.instance} released`;
      case "HealthCheckFailed":
        return `Node ${event.node}: health check failed (${event.failures} in a row): ${event.message}`;
      case "Log":
        return `[node ${event.node}] ${event.line}`;
      case "ClusterDestroyed":
        return `Cluster terminated (${seconds(event.elapsedMs)})${
          event.cost === undefined ? "" : `, cost ${formatDollars(event.cost)}`
        }`;
      case "Cost":
        return `${formatDollars(event.spent)} spent, ${
          formatDollars(event.ratePerHour)
        }/h now (${event.nodes.length} machine(s))`;
      case "BudgetWarning":
        return `Spent ${formatDollars(event.spent)} of the ${
          formatDollars(event.maxCost)
        } budget (warning at ${formatDollars(event.warnAt)})`;
      case "BudgetLimited":
        return `The budget allows ${event.allowed} of ${event.wanted} more node(s): ${
          formatDollars(event.spent)
        } spent of its maxCost of ${formatDollars(event.maxCost)}`;
      case "BudgetExceeded":
        return `Spent ${formatDollars(event.spent)}, the budget's maxCost of ${
          formatDollars(event.maxCost)
        }: failing the tasks and closing the pool`;
    }
  })();
  return `[${event.type}] ${text}`;
}

/**
 * A node as the pool holds it: its machine, its connection, how its worker
 * is started, its session, the tasks it runs, and where it stands in its
 * life, as one state ({@linkcode NodeState}) changed only by
 * {@linkcode transition}, which refuses a change that cannot happen. The
 * predicates here are how the rest of the pool reads that state.
 *
 * @module
 */
import type { Instance } from "../provider.ts";
import type { Host } from "../transport/host.ts";
import type { HealthMonitor } from "./health.ts";
import type { Job } from "./job.ts";
import type { NodeSession } from "./node.ts";

/**
 * Where a node stands in its life. Before it has a record, while its
 * machine is launched, connected and given its code, its rank is held by
 * the pool as joining; from then on:
 *
 * - `"starting"`: its worker is being started the first time;
 * - `"admitting"`: its worker is up, waiting for its first successful
 *   health check (only health checks run there);
 * - `"ready"`: it takes tasks;
 * - `"restarting"`: its worker was lost once ready; it is being restarted,
 *   or its machine replaced;
 * - `"retiring"`: it takes no new task, finishes those it holds, then leaves;
 * - `"gone"`: given up, retired or replaced, for good.
 */
export type NodeState =
  | "starting"
  | "admitting"
  | "ready"
  | "restarting"
  | "retiring"
  | "gone";

/**
 * The changes of state that can happen, from each state. A node can always
 * be given up (`"gone"`), and leave (`"retiring"`) unless it is still
 * starting.
 */
export const TRANSITIONS: Readonly<
  Record<NodeState, readonly NodeState[]>
> = {
  starting: ["admitting", "ready", "gone"],
  admitting: ["ready", "restarting", "retiring", "gone"],
  ready: ["restarting", "retiring", "gone"],
  restarting: ["admitting", "ready", "retiring", "gone"],
  retiring: ["gone"],
  gone: [],
};

/**
 * Moves a node to another state.
 *
 * @param node The node.
 * @param to Its new state.
 * @param reason Why, for `"gone"`: kept in `node.reason`.
 * @throws {Error} When the change cannot happen (a bug of the pool).
 *
 * @example
 * ```ts
 * import { transition, type PoolNode } from "./node_state.ts";
 *
 * const node = { state: "starting" } as PoolNode;
 * transition(node, "ready");
 * transition(node, "gone", "retired");
 * console.log(node.state, node.reason); // gone retired
 * ```
 */
export function transition(
  node: PoolNode,
  to: NodeState,
  reason?: string,
): void {
  if (!TRANSITIONS[node.state].includes(to)) {
    throw new Error(
      `Node ${node.index} cannot go from ${node.state} to ${to}${
        reason ? ` (${reason})` : ""
      }`,
    );
  }
  node.state = to;
  if (to === "gone") node.reason = reason ?? node.reason ?? "gone";
}

/** How a node's worker is started. */
export interface WorkerLaunch {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

/** One node of the pool. */
export interface PoolNode {
  index: number;
  instance: Instance;
  host: Host;
  launch: WorkerLaunch;
  /** The worker's session; replaced when the worker is restarted. */
  session?: NodeSession;
  /** Worker restarts since the last task completed here. */
  restarts: number;
  /** Where it stands; changed only by {@linkcode transition}. */
  state: NodeState;
  /** Why it is gone, once it is. */
  reason?: string;
  running: Set<Job>;
  /** Jobs waiting for this node only (broadcasts). */
  pinned: Job[];
  /** Average time between completions while work was queued, in ms. */
  gapMs: number;
  lastDoneAt: number;
  /** Since when it runs no task (health checks aside), in ms of `performance.now()`. */
  idleSince: number;
  /** Its health checks, when the pool has some. */
  health?: HealthMonitor;
  /**
   * Why it must be replaced though its machine is still there (its health
   * checks failed): set beside the state, read when its worker is lost.
   */
  unhealthy?: string;
  /** Called when its last task settles. */
  whenIdle?: () => void;
  /** The cluster view it was last sent, as JSON. */
  view: string;
  /** The worker's handshake answer. */
  hello?: { pid: number; hostname: string };
}

/**
 * Whether a node's worker is connected, has its code, and is not lost: it
 * can be sent what it is meant to run (health checks while admitting, the
 * tasks it holds while retiring).
 *
 * @example
 * ```ts
 * import { isReady } from "./node_state.ts";
 *
 * console.log(isReady(undefined)); // false
 * ```
 */
export function isReady(
  node: PoolNode | undefined,
): node is PoolNode & { session: NodeSession } {
  return node !== undefined &&
    (node.state === "admitting" || node.state === "ready" ||
      node.state === "retiring") &&
    node.session !== undefined && !node.session.lostReason &&
    node.session.codeUrl !== "";
}

/**
 * Whether a node takes new work: ready, admitted by its health check, not
 * leaving.
 *
 * @example
 * ```ts
 * import { takesWork } from "./node_state.ts";
 *
 * console.log(takesWork(undefined)); // false
 * ```
 */
export function takesWork(
  node: PoolNode | undefined,
): node is PoolNode & { session: NodeSession } {
  return node?.state === "ready" && isReady(node);
}

/**
 * Whether a node is not admitted yet: its worker is starting, or waits for
 * its first successful health check (only health checks are sent to it).
 *
 * @example
 * ```ts
 * import { isGated, type PoolNode } from "./node_state.ts";
 *
 * console.log(isGated({ state: "admitting" } as PoolNode)); // true
 * ```
 */
export function isGated(node: PoolNode | undefined): boolean {
  return node?.state === "starting" || node?.state === "admitting";
}

/**
 * Whether a node is given up for good (retired, replaced, failed); a rank
 * holding none, or a gone node, is free.
 *
 * @example
 * ```ts
 * import { isGone, type PoolNode } from "./node_state.ts";
 *
 * console.log(isGone({ state: "gone" } as PoolNode)); // true
 * ```
 */
export function isGone(node: PoolNode | undefined): boolean {
  return node?.state === "gone";
}

/**
 * Why a node was given up, once it was.
 *
 * @example
 * ```ts
 * import { goneReason, type PoolNode } from "./node_state.ts";
 *
 * console.log(goneReason({ state: "gone", reason: "retired" } as PoolNode)); // retired
 * ```
 */
export function goneReason(node: PoolNode | undefined): string | undefined {
  return node?.state === "gone" ? node.reason : undefined;
}

/**
 * Whether a node is leaving the pool: it takes no new work.
 *
 * @example
 * ```ts
 * import { isLeaving, type PoolNode } from "./node_state.ts";
 *
 * console.log(isLeaving({ state: "retiring" } as PoolNode)); // true
 * ```
 */
export function isLeaving(node: PoolNode | undefined): boolean {
  return node?.state === "retiring";
}

/**
 * Whether a node is one the pool keeps: starting, admitting, ready or
 * restarting — neither leaving nor gone.
 *
 * @example
 * ```ts
 * import { isStaying, type PoolNode } from "./node_state.ts";
 *
 * console.log(isStaying({ state: "restarting" } as PoolNode)); // true
 * ```
 */
export function isStaying(
  node: PoolNode | undefined,
): node is PoolNode {
  return node !== undefined && node.state !== "gone" &&
    node.state !== "retiring";
}

/**
 * Whether a node is admitted and staying: ready, or restarting its worker
 * (what a broadcast runs on).
 *
 * @example
 * ```ts
 * import { isAdmitted, type PoolNode } from "./node_state.ts";
 *
 * console.log(isAdmitted({ state: "admitting" } as PoolNode)); // false
 * ```
 */
export function isAdmitted(node: PoolNode | undefined): node is PoolNode {
  return node?.state === "ready" || node?.state === "restarting";
}

/**
 * Whether a node runs or holds a task (health checks aside).
 *
 * @example
 * ```ts
 * import { isBusy, type PoolNode } from "./node_state.ts";
 *
 * console.log(isBusy({ pinned: [], running: new Set() } as unknown as PoolNode)); // false
 * ```
 */
export function isBusy(node: PoolNode): boolean {
  if (node.pinned.some((j) => !j.probe)) return true;
  for (const job of node.running) if (!job.probe) return true;
  return false;
}

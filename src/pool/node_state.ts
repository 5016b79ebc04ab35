/**
 * A node as the pool holds it: its machine, its connection, how its worker
 * is started, its session, the tasks it runs, and where it stands in its
 * life (starting, gated by its health check, ready, leaving, given up).
 * The predicates here are how the rest of the pool reads that state.
 *
 * @module
 */
import type { Instance } from "../provider.ts";
import type { Host } from "../transport/host.ts";
import type { HealthMonitor } from "./health.ts";
import type { Job } from "./job.ts";
import type { NodeSession } from "./node.ts";

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
  /** Since when it runs no task (health checks aside), in ms of `performance.now()`. */
  idleSince: number;
  /** Whether it waits for its first successful health check (it takes no work). */
  gated: boolean;
  /** Its health checks, when the pool has some. */
  health?: HealthMonitor;
  /** Why it must be replaced though its machine is still there (failed health checks). */
  unhealthy?: string;
  /** Set once it is leaving the pool: it takes no new work. */
  retiring?: boolean;
  /** Called when its last task settles. */
  whenIdle?: () => void;
  /** The cluster view it was last sent, as JSON. */
  view: string;
  /** The worker's handshake answer. */
  hello?: { pid: number; hostname: string };
}

/** Whether a node's worker is connected, has its code, and is not lost. */
export function isReady(
  node: PoolNode | undefined,
): node is PoolNode & { session: NodeSession } {
  return node !== undefined && node.session !== undefined &&
    !node.session.lostReason && node.session.codeUrl !== "";
}

/** Whether a node takes new work: ready, admitted by its health check, not leaving. */
export function takesWork(
  node: PoolNode | undefined,
): node is PoolNode & { session: NodeSession } {
  return isReady(node) && !node.gated && !node.retiring && !node.dead;
}

/** Whether a node runs or holds a task (health checks aside). */
export function isBusy(node: PoolNode): boolean {
  if (node.pinned.some((j) => !j.probe)) return true;
  for (const job of node.running) if (!job.probe) return true;
  return false;
}

/** Whether a node was given up (lost for good, replaced, or retired). */
export function isGone(node: PoolNode | undefined): boolean {
  return node?.dead !== undefined;
}

/** Why a node was given up, once it was. */
export function goneReason(node: PoolNode | undefined): string | undefined {
  return node?.dead;
}

/** Whether a node is leaving the pool (it takes no new work). */
export function isLeaving(node: PoolNode): boolean {
  return node.retiring === true;
}

/** Whether a node waits for its first health check (only probes run there). */
export function isGated(node: PoolNode): boolean {
  return node.gated;
}

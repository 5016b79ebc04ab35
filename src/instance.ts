/**
 * `instanceInfo()`: where the current task runs.
 *
 * @module
 */

/** An accelerator attached to a node. */
export interface AcceleratorInfo {
  /** The model, e.g. `"T4"`. */
  name: string;
  /** How many the node has. */
  count: number;
  /** Memory per device, e.g. `"16GB"`, when known. */
  memory?: string;
}

/** Where a task runs: its node, the cluster around it, and the job. */
export interface InstanceInfo {
  /** This node's index, from 0. */
  node: number;
  /**
   * How many nodes the pool has: the highest rank in use, plus one. In an
   * elastic pool it follows the nodes as they join and leave; a task sees
   * the value of the moment it started.
   */
  totalNodes: number;
  /** Whether this is node 0. */
  isHead: boolean;
  /** The private address of node 0, reachable from every node. */
  headAddr: string;
  /** A port on node 0 free for the user's own coordination (e.g. a rendezvous). */
  headPort: number;
  /**
   * The private addresses of every node, by index (`totalNodes` entries):
   * `""` for a rank no node holds at the moment (an elastic pool's), and
   * where nodes have no private network.
   */
  peers: string[];
  /** The accelerators of this node. */
  accelerators: AcceleratorInfo[];
  /** The pool's id, shared by every node. */
  jobId: string;
  /** This machine's host name. */
  hostname: string;
}

const INSTANCE = Symbol.for("skyward.instance");

/**
 * Describes the node the current task runs on. Outside a pool (for example in
 * `compute.local(...)`), it describes a single local node.
 *
 * @returns The node's index, the cluster's size and addresses, and the job id.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 * import { workerInfo } from "../examples/broadcast.ts";
 *
 * // On a pool, each node answers for itself; here, one local node.
 * console.log(workerInfo.local()); // { node: 0, total: 1, isHead: true }
 * console.log(sky.instanceInfo().totalNodes); // 1
 * ```
 */
export function instanceInfo(): InstanceInfo {
  const info = stored();
  if (info) return structuredClone(info);
  let hostname = "localhost";
  try {
    hostname = Deno.hostname();
  } catch {
    // No sys permission: keep the default.
  }
  return {
    node: 0,
    totalNodes: 1,
    isHead: true,
    headAddr: "127.0.0.1",
    headPort: 29500,
    peers: ["127.0.0.1"],
    accelerators: [],
    jobId: "local",
    hostname,
  };
}

/**
 * The node's place in the pool, read without copying the rest of
 * {@linkcode instanceInfo}: `{ node: 0, totalNodes: 1 }` outside a pool.
 *
 * @returns The node's index and the pool's number of nodes.
 *
 * @example
 * ```ts
 * import { placement } from "./instance.ts";
 *
 * console.log(placement()); // { node: 0, totalNodes: 1 }
 * ```
 */
export function placement(): { node: number; totalNodes: number } {
  const info = stored();
  return info
    ? { node: info.node, totalNodes: info.totalNodes }
    : { node: 0, totalNodes: 1 };
}

/** What the worker set with {@linkcode setInstanceInfo}, if anything. */
function stored(): InstanceInfo | undefined {
  return (globalThis as Record<symbol, unknown>)[INSTANCE] as
    | InstanceInfo
    | undefined;
}

/** Sets what {@linkcode instanceInfo} returns in this process (the worker calls it). */
export function setInstanceInfo(info: InstanceInfo): void {
  (globalThis as Record<symbol, unknown>)[INSTANCE] = Object.freeze(info);
}

/**
 * Elastic pools: how many nodes a pool holds, between `min` and `max`, and
 * the policy that grows it while tasks wait for a slot and retires nodes
 * left idle. The pool applies the plan; this module only decides.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";

/**
 * How many nodes a pool has. A pool whose `max` exceeds its `min` is
 * elastic: it adds nodes while tasks wait for a free slot and retires nodes
 * idle past `idleTimeout`, never going below `min` nor above `max`.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { square } from "../../examples/parallel.ts";
 *
 * // No node until a task arrives; up to 2 while tasks wait.
 * const nodes: sky.NodesOptions = { min: 0, max: 2, idleTimeout: 1_000 };
 * await using pool = await sky.ComputePool.start({ provider: sky.Local(), nodes, console: "silent" });
 * console.log(pool.size, await pool.run(square(2)), pool.size); // 0 4 1
 * ```
 */
export interface NodesOptions {
  /**
   * How many nodes to launch at the start.
   * @default min, else 1
   */
  desired?: number;
  /**
   * How many must be ready before work starts (the rest join as they come),
   * and the fewest the pool keeps. `0` lets an idle pool scale to zero: it
   * wakes when a task arrives.
   * @default desired
   */
  min?: number;
  /**
   * The most nodes the pool may grow to under load.
   * @default desired (no growth)
   */
  max?: number;
  /**
   * How many tasks must wait for a slot, per slot of a new node, before the
   * pool adds that node: `1` adds a node for every `concurrency` waiting
   * tasks, `4` for every `4 × concurrency`.
   * @default 1
   */
  pressure?: number;
  /**
   * The least time between two additions of nodes, in milliseconds.
   * @default 10_000
   */
  cooldown?: number;
  /**
   * How long a node above `min` may run no task before it is retired, in
   * milliseconds.
   * @default 60_000
   */
  idleTimeout?: number;
}

const count = z.number().int().nonnegative();

/** The schema of the `nodes` option, resolving defaults. */
export const nodesSchema = z.union([
  z.number().int().positive(),
  z.object({
    desired: count.optional(),
    min: count.optional(),
    max: z.number().int().positive().optional(),
    pressure: z.number().positive().default(1),
    cooldown: count.default(10_000),
    idleTimeout: z.number().int().positive().default(60_000),
  }).strict(),
], { error: "must be a positive integer, or { desired, min, max }" }).default(1)
  .transform((nodes, ctx) => {
    if (typeof nodes === "number") {
      return {
        desired: nodes,
        min: nodes,
        max: nodes,
        pressure: 1,
        cooldown: 10_000,
        idleTimeout: 60_000,
      };
    }
    const desired = nodes.desired ?? nodes.min ?? 1;
    const min = nodes.min ?? desired;
    const max = nodes.max ?? Math.max(desired, 1);
    if (min > max) {
      ctx.addIssue({
        code: "custom",
        path: ["min"],
        message: `must not exceed max (${max})`,
      });
    } else if (desired < min || desired > max) {
      ctx.addIssue({
        code: "custom",
        path: ["desired"],
        message: `must be between min (${min}) and max (${max})`,
      });
    }
    return { ...nodes, desired, min, max };
  });

/** The `nodes` option with every default applied. */
export type ResolvedNodes = z.output<typeof nodesSchema>;

/** What the pool looks like when the policy runs. */
export interface ScalingState {
  /** Now, in milliseconds (any clock, the same as the other times). */
  now: number;
  /** Nodes the pool holds and does not retire: ready, starting or restarting. */
  live: number;
  /** Of those, the nodes still starting. */
  starting: number;
  /** Tasks waiting for a node (not sent yet). */
  waiting: number;
  /** Tasks one node runs at once. */
  concurrency: number;
  /** When nodes were last added, or `-Infinity`. */
  lastAdded: number;
  /** The ranks of the nodes counted in `live`. */
  ranks: number[];
  /** The ready nodes running no task: their rank, and since when they idle. */
  idle: { rank: number; since: number }[];
}

/** What the pool should do now. */
export interface ScalingPlan {
  /** How many nodes to add. */
  add: number;
  /** The ranks of the nodes to retire. */
  retire: number[];
}

/**
 * Decides how an elastic pool changes. At most once per `cooldown` (an
 * empty pool with a task waiting wakes at once), it adds nodes: up to `min` when it has fewer (lost nodes), and, while tasks wait
 * beyond what starting nodes will take, one per `pressure × concurrency`
 * waiting tasks (at least one when it has none), up to `max`. With no task
 * waiting, it
 * retires the nodes idle for `idleTimeout`, highest rank first, down to `min`;
 * the `min` nodes of lowest rank are never retired for being idle.
 *
 * @param nodes The resolved `nodes` option.
 * @param state The pool's state.
 * @returns How many nodes to add and which to retire.
 *
 * @example
 * ```ts
 * import { nodesSchema, planScaling } from "./elastic.ts";
 *
 * const nodes = nodesSchema.parse({ min: 0, max: 4 });
 * const plan = planScaling(nodes, {
 *   now: 0, live: 0, starting: 0, waiting: 3, concurrency: 1,
 *   lastAdded: -Infinity, ranks: [], idle: [],
 * });
 * console.log(plan); // { add: 3, retire: [] }
 * ```
 */
export function planScaling(
  nodes: ResolvedNodes,
  state: ScalingState,
): ScalingPlan {
  const plan: ScalingPlan = { add: 0, retire: [] };
  const room = Math.max(0, nodes.max - state.live);
  // An empty pool wakes at once: nothing is starting that could be overshot.
  const wake = state.live === 0 && state.waiting > 0;
  if (room > 0 && (wake || state.now - state.lastAdded >= nodes.cooldown)) {
    const perNode = nodes.pressure * state.concurrency;
    const unserved = state.waiting - state.starting * state.concurrency;
    let wanted = unserved > 0 ? Math.floor(unserved / perNode) : 0;
    if (unserved > 0 && state.live === 0) wanted = Math.max(wanted, 1);
    plan.add = Math.min(room, Math.max(nodes.min - state.live, wanted));
  }
  if (state.waiting === 0 && plan.add === 0) {
    let spare = state.live - nodes.min;
    // The `min` lowest ranks stay, so that the head and low ranks are stable.
    const kept = new Set(
      [...state.ranks].sort((a, b) => a - b).slice(0, nodes.min),
    );
    const idle = state.idle.filter((n) =>
      !kept.has(n.rank) && state.now - n.since >= nodes.idleTimeout
    ).sort((a, b) => b.rank - a.rank);
    for (const node of idle) {
      if (spare-- <= 0) break;
      plan.retire.push(node.rank);
    }
  }
  return plan;
}

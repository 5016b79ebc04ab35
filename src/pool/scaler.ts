/**
 * Applying the elastic plan (the policy itself is `elastic.ts`): growing
 * the pool by launching machines, retiring nodes (idle ones first; a
 * retired node finishes its tasks, then leaves), `resize()`, and the timer
 * that runs the policy while the pool is elastic.
 *
 * @module
 */
import { PoolClosedError, ProvisioningError } from "../errors.ts";
import { logger } from "../log.ts";
import type { Instance } from "../provider.ts";
import { planScaling, type ResolvedNodes } from "./elastic.ts";
import {
  isBusy,
  isGone,
  isReady,
  isStaying,
  type PoolNode,
  takesWork,
  transition,
} from "./node_state.ts";
import { nodeLimitOf } from "./options.ts";
import type { PoolHooks, Provisioner } from "./provisioner.ts";
import { show } from "../_options.ts";

const log = logger("pool");

/** What a {@linkcode Scaler} needs from the pool. */
export interface ScalerHooks extends PoolHooks {
  /** Ranks of nodes still starting. */
  joining(): ReadonlyMap<number, string>;
  /** Whether any task is waiting or running. */
  busy(): boolean;
  /** How many tasks wait for any node. */
  waiting(): number;
  /** Tasks a node runs at once. */
  concurrency: number;
  /** Brings a launched machine in; resolves to its rank. */
  join(instance: Instance): Promise<number>;
  /** No node is left nor coming: fails the tasks waiting for one. */
  starved(error: ProvisioningError): void;
}

/**
 * Grows and shrinks the pool.
 *
 * @example
 * ```ts ignore
 * const scaler = new Scaler(options.nodes, provisioner, hooks);
 * if (scaler.elastic) scaler.watch();
 * await scaler.resize(3);
 * ```
 */
export class Scaler {
  /** The resolved `nodes` option; `resize()` moves its `min` and `max`. */
  readonly scaling: ResolvedNodes;
  /** Machines asked of the provider and not returned yet. */
  provisioning = 0;
  #provisioner: Provisioner;
  #hooks: ScalerHooks;
  /** When nodes were last added by the scaling policy or `resize()`. */
  #lastAdded = -Infinity;
  #timer?: ReturnType<typeof setInterval>;
  #pending = false;
  /** Additions of nodes in progress. */
  #growing = new Set<Promise<void>>();
  /** Whether the budget held the last addition back (said once). */
  #capped = false;

  /**
   * @param nodes The resolved `nodes` option.
   * @param provisioner Where machines come from.
   * @param hooks What the scaler tells the pool, and asks it.
   */
  constructor(
    nodes: ResolvedNodes,
    provisioner: Provisioner,
    hooks: ScalerHooks,
  ) {
    this.scaling = { ...nodes };
    this.#provisioner = provisioner;
    this.#hooks = hooks;
  }

  /** Whether the scaling policy runs (the pool may grow or shrink by itself). */
  get elastic(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Refuses a size the pool cannot have.
   *
   * @param nodes The size asked for.
   * @throws {RangeError} When it is not a non-negative integer, or more than
   *   the provider holds.
   */
  check(nodes: number): void {
    if (!Number.isInteger(nodes) || nodes < 0) {
      throw new RangeError(
        `Cannot resize pool: 'nodes' must be a non-negative integer, got ${
          show(nodes)
        }`,
      );
    }
    const provider = this.#provisioner.provider;
    const limit = nodeLimitOf(provider);
    if (nodes > limit.max) {
      throw new RangeError(
        `Cannot resize pool to ${nodes} nodes: ${provider.name} allows at most ${limit.max} ` +
          `(${limit.reason})`,
      );
    }
  }

  /**
   * Grows or shrinks the pool to `nodes` nodes, which become its `min` (and
   * its `max`, when above it).
   *
   * @param nodes How many nodes, {@linkcode Scaler.check}ed.
   */
  async resize(nodes: number): Promise<void> {
    await Promise.allSettled(this.#growing);
    const previous = this.live();
    // Refused before anything changes when the budget cannot pay for it.
    if (nodes > previous) {
      this.#provisioner.guard.admit(
        nodes - previous,
        this.#provisioner.pricePerHour,
      );
    }
    this.scaling.min = nodes;
    this.scaling.max = Math.max(this.scaling.max, nodes);
    if (this.scaling.max > nodes) this.watch();
    if (nodes === previous) return;
    this.#hooks.emit({
      type: "PoolResized",
      previous,
      nodes,
      reason: "resize",
    });
    if (nodes > previous) return await this.#grow(nodes - previous);
    const retiring = this.#retirees(previous - nodes).map((node) =>
      this.#retire(node, "resize")
    );
    await Promise.all(retiring);
  }

  /**
   * Nodes held and not leaving: ready, starting or restarting.
   *
   * @returns How many.
   */
  live(): number {
    const joining = this.#hooks.joining();
    let live = joining.size + this.provisioning;
    for (const [rank, node] of this.#hooks.nodes().entries()) {
      if (isStaying(node) && !joining.has(rank)) live++;
    }
    return live;
  }

  /** The nodes to retire first: idle ones, then busy ones, highest rank first. */
  #retirees(count: number): PoolNode[] {
    const joining = this.#hooks.joining();
    const candidates = this.#hooks.nodes().filter((n, rank): n is PoolNode =>
      isStaying(n) && !joining.has(rank)
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
    const hooks = this.#hooks;
    const provisioner = this.#provisioner;
    const growing = (async () => {
      let instances: Instance[];
      this.provisioning += count;
      try {
        instances = await provisioner.launch(count);
      } catch (error) {
        this.provisioning -= count;
        this.#starved(error);
        throw error;
      }
      this.provisioning -= count;
      if (hooks.closed()) {
        await provisioner.discard(instances);
        throw new PoolClosedError();
      }
      const results = await Promise.allSettled(
        instances.map((instance) => hooks.join(instance)),
      );
      const failed = results.flatMap((r) =>
        r.status === "rejected" ? [r.reason] : []
      );
      if (failed.length > 0 || instances.length < count) {
        const started = instances.length - failed.length;
        const error = new ProvisioningError(
          `Cannot add ${count} node(s) on ${provisioner.provider.name}: ${started} started${
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
    if (this.#hooks.closed() || this.live() > 0) return;
    this.#hooks.starved(
      new ProvisioningError(
        `No node could be started to run the task: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      ),
    );
  }

  /**
   * Takes a node out of the pool: it gets no new task, finishes those it
   * holds, then its worker stops and its machine is released.
   */
  async #retire(node: PoolNode, reason: "idle" | "resize"): Promise<void> {
    if (!isStaying(node) || node.state === "starting") return;
    const hooks = this.#hooks;
    transition(node, "retiring");
    node.health?.stop();
    if (node.running.size > 0 || node.pinned.length > 0) {
      await new Promise<void>((resolve) => node.whenIdle = resolve);
    }
    if (hooks.closed()) return;
    if (!isGone(node)) transition(node, "gone", "retired");
    await node.session?.close(new PoolClosedError("The node was retired"))
      .catch(() => {});
    await node.host.close().catch(() => {});
    await this.#provisioner.release([node.instance.id]);
    const nodes = hooks.nodes();
    if (nodes[node.index] === node) nodes[node.index] = undefined;
    hooks.emit({
      type: "NodeRetired",
      node: node.index,
      instance: node.instance.id,
      reason,
    });
    hooks.announce();
  }

  /**
   * How many of `count` nodes the budget allows now; reports
   * `BudgetLimited` when it starts allowing fewer.
   */
  #afford(count: number): number {
    const provisioner = this.#provisioner;
    const allowed = provisioner.affordable(count);
    if (allowed < count && !this.#capped) {
      this.#hooks.emit({
        type: "BudgetLimited",
        wanted: count,
        allowed,
        spent: provisioner.spend.spent(),
        maxCost: provisioner.guard.limit?.maxCost ?? 0,
      });
    }
    this.#capped = allowed < count;
    return allowed;
  }

  /** Runs the scaling policy from now on (an elastic pool). */
  watch(): void {
    if (this.#timer !== undefined || this.#hooks.closed()) return;
    const { cooldown, idleTimeout } = this.scaling;
    const tick = Math.min(
      1_000,
      Math.max(10, Math.min(cooldown || idleTimeout, idleTimeout) / 4),
    );
    this.#timer = setInterval(() => this.scale(), tick);
    Deno.unrefTimer(this.#timer);
  }

  /** Runs the scaling policy at the end of this turn. */
  soon(): void {
    if (this.#pending) return;
    this.#pending = true;
    queueMicrotask(() => {
      this.#pending = false;
      this.scale();
    });
  }

  /** Stops the scaling policy's timer (the pool is closing). */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** Applies the scaling policy once. */
  scale(): void {
    const hooks = this.#hooks;
    if (hooks.closed()) return;
    // While tasks wait, the policy's timer keeps the program alive.
    if (this.#timer !== undefined) {
      if (hooks.busy()) Deno.refTimer(this.#timer);
      else Deno.unrefTimer(this.#timer);
    }
    const now = performance.now();
    const joining = hooks.joining();
    const nodes = hooks.nodes();
    const idle: { rank: number; since: number }[] = [];
    const ranks = [...joining.keys()];
    for (const [rank, node] of nodes.entries()) {
      if (isStaying(node) && !joining.has(rank)) ranks.push(rank);
      if (takesWork(node) && !joining.has(rank) && !isBusy(node)) {
        idle.push({ rank, since: node.idleSince });
      }
    }
    const live = this.live();
    const plan = planScaling(this.scaling, {
      now,
      live,
      starting: joining.size + this.provisioning,
      waiting: hooks.waiting(),
      concurrency: hooks.concurrency,
      lastAdded: this.#lastAdded,
      ranks,
      idle,
    });
    // The budget may allow fewer (with no node left, trying tells why).
    const add = live === 0 ? plan.add : this.#afford(plan.add);
    if (add > 0) {
      hooks.emit({
        type: "PoolResized",
        previous: live,
        nodes: live + add,
        reason: live < this.scaling.min ? "min" : "queue",
      });
      this.#grow(add).catch((error) =>
        log.warn("Cannot add {count} node(s): {error}", {
          count: add,
          error,
        })
      );
    }
    if (plan.retire.length > 0) {
      hooks.emit({
        type: "PoolResized",
        previous: live,
        nodes: live - plan.retire.length,
        reason: "idle",
      });
      for (const rank of plan.retire) this.#retire(nodes[rank]!, "idle");
    }
  }
}

/**
 * What the pool does when a node's worker is lost: its tasks are sent again
 * (or fail, past `retryOnInterruption`), its worker is restarted on the same
 * machine with backoff, or, when the provider took the machine back (a spot
 * interruption) or it failed its health checks, a new machine replaces it;
 * a node that cannot be restarted is given up.
 *
 * @module
 */
import { NodeLostError, ProvisioningError } from "../errors.ts";
import { logger } from "../log.ts";
import type { Instance } from "../provider.ts";
import { backoff } from "../_retry.ts";
import { sleep } from "../_timers.ts";
import type { Job } from "./job.ts";
import type { NodeSession } from "./node.ts";
import { type PoolNode, transition } from "./node_state.ts";
import type { PoolHooks, Provisioner } from "./provisioner.ts";

const log = logger("pool");

/** Worker restarts a node gets before it is given up. */
const MAX_RESTARTS = 3;

/** The waits between a node's restarts: 500 ms, then 1 s, 2 s. */
const RESTART_BACKOFF = { minDelay: 500, maxDelay: 5_000, jitter: 0 };

/** What a {@linkcode Recovery} needs from the pool. */
export interface RecoveryHooks extends PoolHooks {
  /** How many times a task is sent again after its node was lost. */
  retryOnInterruption: number;
  /** Settles a task with an error. */
  settle(job: Job, error: Error): void;
  /** Puts tasks back at the head of the shared queue. */
  requeue(jobs: Job[]): void;
  /** Sends queued work to nodes with free slots. */
  drain(): void;
  /** Fails the tasks that wait too long for a node, while none is ready. */
  watchStarvation(): void;
  /** Starts a node's worker again. */
  startWorker(node: PoolNode, admitted: boolean): Promise<void>;
  /** Brings a new machine in, at the lowest free rank counting `freeing`. */
  join(instance: Instance, freeing: number): Promise<number>;
  /** A node was given up for good, and the pool launches no other for it. */
  abandoned(node: PoolNode, reason: string): void;
}

/**
 * Recovers lost nodes.
 *
 * @example
 * ```ts ignore
 * const recovery = new Recovery(provisioner, hooks);
 * // given to each node's session: called when its worker stops answering
 * recovery.lost(node, session, "the worker exited");
 * ```
 */
export class Recovery {
  #provisioner: Provisioner;
  #hooks: RecoveryHooks;

  /**
   * @param provisioner Where replacements come from.
   * @param hooks What recovery tells the pool, and asks it.
   */
  constructor(provisioner: Provisioner, hooks: RecoveryHooks) {
    this.#provisioner = provisioner;
    this.#hooks = hooks;
  }

  /**
   * A node's worker stopped answering. Its tasks are sent again (up to
   * `retryOnInterruption` times each), and its worker is restarted on the
   * same machine once the transport is back — or, when the provider says
   * the machine is gone (a spot interruption), on a new machine provisioned
   * for the same node; a node that cannot be restarted is dropped, and its
   * tasks go to the others.
   *
   * @param node The node.
   * @param session The session that was lost (an older one is ignored).
   * @param reason Why.
   */
  lost(node: PoolNode, session: NodeSession, reason: string): void {
    const hooks = this.#hooks;
    // A worker that never became ready is the bring-up's failure to report;
    // one restarting is the restart's; one given up is not restarted.
    if (hooks.closed() || node.session !== session) return;
    if (node.state === "starting" || node.state === "restarting") return;
    if (node.state === "gone") return;
    reason = node.unhealthy ?? reason;
    node.health?.stop();
    hooks.emit({ type: "NodeLost", node: node.index, reason });
    const retry: Job[] = [];
    for (const job of node.running) {
      job.node = undefined;
      // A job whose streams began cannot be sent again: it fails instead.
      if (
        job.attempts < hooks.retryOnInterruption && !job.call?.unrepeatable
      ) {
        job.attempts++;
        job.timer?.();
        retry.push(job);
      } else {
        // Settled without its node (which is not to count it as done), so
        // its TaskFailed is reported here.
        const error = new NodeLostError(node.index, reason);
        hooks.emit({
          type: "TaskFailed",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs: performance.now() - job.sentAt,
          error: error.name,
          message: error.message,
        });
        hooks.settle(job, error);
      }
    }
    node.running.clear();
    for (const job of retry) {
      if (job.pin !== undefined) node.pinned.unshift(job);
    }
    const now = performance.now();
    for (const job of retry) job.queuedAt = now;
    hooks.requeue(retry.filter((j) => j.pin === undefined));
    if (node.state === "retiring") {
      // It was leaving anyway: its tasks go to the others.
      transition(node, "gone", reason);
      for (const job of node.pinned.splice(0)) {
        hooks.settle(job, new NodeLostError(node.index, reason));
      }
      node.whenIdle?.();
      hooks.drain();
      return;
    }
    const admitted = node.state === "ready";
    transition(node, "restarting");
    hooks.drain();
    hooks.watchStarvation();
    this.#restart(node, reason, admitted);
  }

  /** Restarts a lost node's worker, with backoff; gives the node up after {@linkcode MAX_RESTARTS}. */
  async #restart(
    node: PoolNode,
    reason: string,
    admitted: boolean,
  ): Promise<void> {
    const hooks = this.#hooks;
    while (
      !hooks.closed() && node.state === "restarting" &&
      node.restarts < MAX_RESTARTS
    ) {
      node.restarts++;
      try {
        if (await this.#replaceIfGone(node)) return;
        await hooks.startWorker(node, admitted);
        return;
      } catch (error) {
        log.warn("Node {node} could not restart its worker: {error}", {
          node: node.index,
          error,
        });
        await sleep(backoff(node.restarts, RESTART_BACKOFF));
      }
    }
    if (hooks.closed() || node.state !== "restarting") return;
    // The node is gone for good: its pinned tasks cannot run anywhere else.
    transition(node, "gone", reason);
    for (const job of node.pinned.splice(0)) {
      hooks.settle(job, new NodeLostError(node.index, reason));
    }
    await this.#provisioner.release([node.instance.id]);
    hooks.announce();
    hooks.abandoned(node, reason);
    hooks.watchStarvation();
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
    const hooks = this.#hooks;
    const provisioner = this.#provisioner;
    const previous = node.instance;
    const unhealthy = node.unhealthy !== undefined;
    if (!unhealthy && await provisioner.isThere(previous)) return false;
    const release = async () => {
      if (!provisioner.instances.has(previous.id)) return;
      if (!unhealthy) {
        hooks.emit({
          type: "InstancePreempted",
          node: node.index,
          instance: previous.id,
        });
      }
      node.session?.kill();
      await node.host.close().catch(() => {});
      await provisioner.release([previous.id]);
    };
    if (!unhealthy) await release();
    if (hooks.closed()) return true;
    let replacement: Instance | undefined;
    try {
      [replacement] = await provisioner.launch(1);
    } finally {
      if (unhealthy) await release();
    }
    if (!replacement) {
      throw new ProvisioningError(
        `${provisioner.provider.name} launched no machine to replace node ${node.index}`,
      );
    }
    // The lost node's rank is free for its replacement, as is any lower one.
    const index = await hooks.join(replacement, node.index);
    const nodes = hooks.nodes();
    const fresh = nodes[index]!;
    fresh.restarts = unhealthy ? node.restarts : 0;
    if (index !== node.index && nodes[node.index] === node) {
      nodes[node.index] = undefined;
    }
    if (node.state !== "gone") {
      transition(node, "gone", `replaced by node ${index}`);
    }
    fresh.pinned.push(...node.pinned.splice(0));
    hooks.emit({
      type: "InstanceReplaced",
      node: index,
      previous: previous.id,
      instance: replacement.id,
    });
    hooks.announce();
    if (hooks.closed()) return true;
    hooks.drain();
    return true;
  }
}

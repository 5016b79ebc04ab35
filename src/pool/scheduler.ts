/**
 * The scheduler: the one way a task reaches a node. Every job — of `run`,
 * `broadcast`, `map`, `stream` and the health probes alike — enters through
 * {@linkcode Scheduler.submit}, waits in the shared queue (or its node's
 * pinned queue), is sent to a node with a free slot (pinned jobs first,
 * then round robin, with prefetch while tasks are short), and settles once:
 * done, failed, cancelled, or failed for want of a node (starvation).
 *
 * @module
 */
import { isPending, type Pending } from "../compute.ts";
import {
  NodeLostError,
  PoolClosedError,
  ProvisioningError,
} from "../errors.ts";
import type { EventInit } from "../events.ts";
import { after } from "../_timers.ts";
import { createJob, type Job, type JobContext } from "./job.ts";
import {
  goneReason,
  isBusy,
  isGated,
  isGone,
  isReady,
  type PoolNode,
  takesWork,
} from "./node_state.ts";
import { StreamedCall } from "./remote_stream.ts";
import {
  answered,
  cancelled,
  failed,
  type Outcome,
  timedOut,
} from "./results.ts";

/** Tasks completing closer together than this, in ms, are short enough to prefetch. */
export const SHORT_TASK_MS = 1;

/** How the scheduler sends work, from the pool's options. */
export interface SchedulerOptions {
  /** Tasks a node runs at once. */
  concurrency: number;
  /** Tasks sent to a node ahead of a free slot while its tasks are short. */
  prefetch: number;
  /** How long a task waits for a node, while the pool has none, before it fails. */
  provisionTimeout: number;
}

/** What the scheduler reads of its pool and tells it. */
export interface SchedulerHooks
  extends Omit<JobContext, "nextId">, SchedulerOptions {
  /** The nodes by rank. */
  nodes(): readonly (PoolNode | undefined)[];
  /** Whether the pool is closed or closing. */
  closed(): boolean;
  /** Reports a task event. */
  emit(event: EventInit): void;
  /** Machines asked for or being brought up: nodes that may take work soon. */
  starting(): number;
  /** The last node given up for good, once no node is left. */
  abandoned(): { node: number; reason: string } | undefined;
  /** Tasks (health probes aside) were added or settled. */
  activity(): void;
  /** The shared queue holds work no node could take yet. */
  backlog(): void;
}

/**
 * The queue of a pool's tasks, and the policy that sends them to nodes.
 *
 * @example
 * ```ts
 * import { Scheduler } from "./scheduler.ts";
 *
 * const scheduler = new Scheduler({
 *   concurrency: 2,
 *   prefetch: 32,
 *   provisionTimeout: 60_000,
 *   moduleOf: () => undefined,
 *   nodes: () => [],
 *   closed: () => false,
 *   emit: () => {},
 *   starting: () => 0,
 *   abandoned: () => undefined,
 *   activity: () => {},
 *   backlog: () => {},
 * });
 * console.log(scheduler.capacity(), scheduler.waiting()); // 34 0
 * ```
 */
export class Scheduler {
  #hooks: SchedulerHooks;
  /** Jobs not yet sent that may run on any node, consumed from `#head`. */
  #queue: Job[] = [];
  #head = 0;
  /** Every job not settled, by id. */
  readonly jobs: Map<number, Job> = new Map();
  /** How many of `jobs` are health probes. */
  #probes = 0;
  #nextId = 1;
  /** Where the next round robin search starts. */
  #rr = 0;
  /** Cancels the timer that fails tasks waiting for a node past provisionTimeout. */
  #starving: (() => void) | undefined;

  /** @param hooks The pool's nodes, state, options and callbacks. */
  constructor(hooks: SchedulerHooks) {
    this.#hooks = hooks;
  }

  /**
   * A job for a task, not yet submitted.
   *
   * @throws {TypeError} When `task` is not a task.
   * @throws {PoolClosedError} When the pool is closed.
   * @throws {ConfigError} When the compute's module was not shipped.
   * @throws {SerializationError} When an argument cannot be sent.
   */
  create(task: Pending<unknown>, pin?: number): Job {
    if (!isPending(task)) {
      throw new TypeError(
        `Cannot run ${typeof task}: expected a task (call a compute to build one) or a group`,
      );
    }
    if (this.#hooks.closed()) throw new PoolClosedError();
    return createJob(task, pin, {
      nextId: () => this.#nextId++,
      moduleOf: (url) => this.#hooks.moduleOf(url),
      image: this.#hooks.image,
      taskTimeout: this.#hooks.taskTimeout,
    });
  }

  /**
   * Queues a job (on its pinned node, else in the shared queue) and sends
   * what can be sent; resolves or rejects once the job settles. A job
   * submitted while no node is left and none is coming fails at once.
   */
  submit(job: Job): Promise<unknown> {
    const promise = new Promise<unknown>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    const hopeless = this.hopeless();
    if (hopeless) {
      // No node is left and none is coming: waiting would be for ever.
      job.settled = true;
      job.reject(hopeless);
      return promise;
    }
    job.queuedAt = performance.now();
    this.jobs.set(job.id, job);
    if (job.probe) this.#probes++;
    else this.#hooks.activity();
    if (job.pin === undefined) this.#queue.push(job);
    else this.#hooks.nodes()[job.pin]!.pinned.push(job);
    this.drain();
    if (this.#head < this.#queue.length) this.#hooks.backlog();
    this.watchStarvation();
    return promise;
  }

  /**
   * Submits jobs that belong together (a group, a broadcast): aborting
   * `signal` cancels those not settled yet; with a signal aborted already,
   * none is sent.
   */
  submitAll(jobs: Job[], signal?: AbortSignal): Promise<unknown>[] {
    if (signal?.aborted) {
      return jobs.map((job) => {
        job.settled = true;
        return Promise.reject(cancelled(job, "aborted"));
      });
    }
    const results = jobs.map((job) => this.submit(job));
    if (signal) {
      const abort = () => this.abortAll(jobs, "aborted");
      signal.addEventListener("abort", abort, { once: true });
      Promise.allSettled(results).then(() =>
        signal.removeEventListener("abort", abort)
      );
    }
    return results;
  }

  /** Puts jobs back at the front of the shared queue (their node was lost). */
  requeue(jobs: Job[]): void {
    this.#queue.splice(this.#head, 0, ...jobs);
  }

  /** How many jobs of the shared queue wait for a node. */
  waiting(): number {
    let waiting = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      if (!this.#queue[i].settled) waiting++;
    }
    return waiting;
  }

  /** Jobs not settled, health probes aside. */
  get pending(): number {
    return this.jobs.size - this.#probes;
  }

  /** Whether some node takes work now (asked once per task: no allocation). */
  #anyReady(): boolean {
    for (const node of this.#hooks.nodes()) if (takesWork(node)) return true;
    return false;
  }

  /**
   * Why no task can run, when the pool has no node left and none coming
   * (its last node was given up and no launch is under way).
   */
  hopeless(): Error | undefined {
    const abandoned = this.#hooks.abandoned();
    if (
      !abandoned || this.#hooks.closed() || this.#hooks.starting() > 0 ||
      this.#hooks.nodes().some((n) => n && !isGone(n))
    ) return undefined;
    return new NodeLostError(
      abandoned.node,
      `${abandoned.reason}; no node is left, and the pool launches no other: ` +
        `close it and start a new pool, or pool.resize(n) to launch new nodes`,
    );
  }

  /**
   * While the pool has no ready node, fails each task that has waited for
   * one longer than `provisionTimeout` (a replacement that never comes),
   * instead of letting it wait for ever.
   */
  watchStarvation(): void {
    if (this.#hooks.closed() || this.#anyReady()) {
      this.#stopStarving();
      return;
    }
    if (this.#starving) return;
    const waiting = [...this.jobs.values()].filter((j) =>
      !j.node && !j.probe && !j.settled
    );
    if (waiting.length === 0) return;
    const limit = this.#hooks.provisionTimeout;
    const oldest = Math.min(...waiting.map((j) => j.queuedAt));
    this.#starving = after(oldest + limit - performance.now(), () => {
      this.#starving = undefined;
      if (this.#hooks.closed() || this.#anyReady()) return;
      const now = performance.now();
      const abandoned = this.#hooks.abandoned();
      const gone = this.#hooks.nodes().findLast((n) => isGone(n));
      const lost = abandoned
        ? `node ${abandoned.node} was lost (${abandoned.reason})`
        : gone
        ? `node ${gone.index} was lost (${goneReason(gone)})`
        : undefined;
      for (const job of [...this.jobs.values()]) {
        if (job.node || job.probe || now - job.queuedAt < limit) continue;
        this.settle(
          job,
          new ProvisioningError(
            `Cannot run '${job.name}': no node became ready within provisionTimeout (${limit} ms)` +
              (lost ? `; the pool has none since ${lost}` : ""),
          ),
        );
      }
      this.watchStarvation();
    });
  }

  #stopStarving(): void {
    this.#starving?.();
    this.#starving = undefined;
  }

  /**
   * Tasks a node may hold: its slots, plus `prefetch` more while its tasks
   * are short (completions under {@linkcode SHORT_TASK_MS} apart), where the
   * round trip would otherwise dominate. Long tasks get no prefetch, so a
   * slow task never holds queued work back from an idle node. Without a
   * node, the most any node may hold.
   */
  capacity(node?: PoolNode): number {
    const { concurrency, prefetch } = this.#hooks;
    return concurrency +
      (node === undefined || node.gapMs < SHORT_TASK_MS ? prefetch : 0);
  }

  /** Updates a node's average gap between completions while work is queued. */
  #completed(node: PoolNode): void {
    const now = performance.now();
    if (node.lastDoneAt > 0 && this.#head < this.#queue.length) {
      node.gapMs = node.gapMs === Infinity
        ? now - node.lastDoneAt
        : 0.8 * node.gapMs + 0.2 * (now - node.lastDoneAt);
    }
    node.lastDoneAt = now;
    node.restarts = 0;
  }

  /**
   * Sends queued jobs to nodes with a free slot: each node's pinned jobs
   * first, then the shared queue, round robin over the ready nodes. Settled
   * jobs left in a queue are skipped.
   */
  drain(): void {
    if (this.#starving && this.#anyReady()) this.#stopStarving();
    const nodes = this.#hooks.nodes();
    for (const node of nodes) {
      if (!isReady(node)) continue;
      if (isGated(node)) {
        // Only its health checks run before it is admitted.
        const probes = node.pinned.filter((j) => j.probe);
        node.pinned = node.pinned.filter((j) => !j.probe);
        for (const job of probes) if (!job.settled) this.#send(job, node);
        continue;
      }
      while (
        node.pinned.length > 0 && node.running.size < this.capacity(node)
      ) {
        const job = node.pinned.shift()!;
        if (!job.settled) this.#send(job, node);
      }
    }
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const job = queue[this.#head];
      if (job.settled) {
        this.#head++;
        continue;
      }
      let target: PoolNode | undefined;
      for (let k = 0; k < nodes.length; k++) {
        const node = nodes[(this.#rr + k) % nodes.length];
        if (takesWork(node) && node.running.size < this.capacity(node)) {
          target = node;
          this.#rr = (this.#rr + k + 1) % nodes.length;
          break;
        }
      }
      if (!target) break;
      this.#head++;
      this.#send(job, target);
    }
    // Compact the queue once its consumed head dominates it.
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #send(job: Job, node: PoolNode): void {
    job.node = node;
    job.sentAt = performance.now();
    node.running.add(job);
    if (job.timeout !== undefined) {
      job.timer = after(job.timeout, () => this.cancel(job, timedOut(job)));
    }
    const session = node.session!;
    const call = new StreamedCall(
      session,
      job.id,
      job.streams ?? [],
      (result) => job.resolve(result),
      () =>
        this.cancel(
          job,
          cancelled(job, "its generator did not return when left"),
        ),
    );
    job.call = call;
    session.call(job.id, job.module, job.key, job.args, job.spec, call.hooks)
      .then(
        (payload) => this.#end(job, answered(payload, call.opened)),
        (error: Error) => this.#end(job, failed(job, error)),
      );
    // Told once the call is on its way. (Health checks report through
    // HealthCheckFailed, not as tasks.)
    if (!job.probe) {
      this.#hooks.emit({
        type: "TaskStarted",
        task: job.id,
        name: job.name,
        node: node.index,
      });
    }
    call.start();
  }

  /** Acts on how a sent job ended. */
  #end(job: Job, outcome: Outcome): void {
    switch (outcome.kind) {
      case "done":
        return this.settle(job, undefined, outcome.value);
      case "failed":
        return this.settle(job, outcome.error);
      case "cancelled":
        return this.cancel(job, outcome.error);
      case "lost":
        // A lost node's tasks are settled or sent again by the node's loss.
        return;
    }
  }

  /**
   * Settles a job once: its caller gets `value` or `error`, its node a free
   * slot (and the next queued job), and a task event is reported.
   */
  settle(job: Job, error: Error | undefined, value?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.timer?.();
    job.call?.end(error);
    this.jobs.delete(job.id);
    if (job.probe) this.#probes--;
    else this.#hooks.activity();
    const node = job.node;
    if (node) {
      if (!job.probe) this.#completed(node);
      node.running.delete(job);
      if (!job.probe && !isBusy(node)) node.idleSince = performance.now();
      if (node.running.size === 0 && node.pinned.length === 0) {
        node.whenIdle?.();
      }
      const elapsedMs = performance.now() - job.sentAt;
      if (job.probe) {
        // Reported by the health monitor.
      } else if (error) {
        this.#hooks.emit({
          type: "TaskFailed",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs,
          error: error.name,
          message: error.message,
        });
      } else {
        this.#hooks.emit({
          type: "TaskCompleted",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs,
        });
      }
    }
    if (error) job.reject(error);
    else job.resolve(value);
    if (node && !this.#hooks.closed()) this.drain();
  }

  /**
   * Cancels a job, the one path of every cancellation — by its caller, by
   * its timeout, by the worker: a job on a node is dropped there (and a late
   * answer ignored), then settles with `error`. A settled job is left as it
   * is.
   */
  cancel(job: Job, error: Error): void {
    if (job.settled) return;
    if (job.node) {
      job.node.session?.cancel(job.id);
      job.node.session?.forget(job.id);
    }
    this.settle(job, error);
  }

  /**
   * Cancels a job for its caller (its signal, its group, its stream).
   *
   * @param job The job.
   * @param reason Why, as the `TaskCancelledError` says.
   */
  abort(job: Job, reason?: string): void {
    this.cancel(job, cancelled(job, reason));
  }

  /** Cancels, for their caller, every job of `jobs` not settled yet. */
  abortAll(jobs: Job[], reason: string): void {
    for (const job of jobs) this.abort(job, reason);
  }

  /** Settles every job with `error` and empties the queue (the pool closes). */
  close(error: Error): void {
    this.#stopStarving();
    for (const job of [...this.jobs.values()]) this.settle(job, error);
    this.#queue = [];
    this.#head = 0;
  }
}

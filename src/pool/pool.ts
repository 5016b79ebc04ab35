/**
 * `ComputePool`: provisions nodes through a provider, ships the code, starts
 * a worker on each node and runs tasks there; closing it releases
 * everything, also when the program fails or is interrupted. The class holds
 * the public verbs and the wiring of its collaborators: the scheduler, the
 * cluster view and the event hub (the task side), the provisioner, the
 * bring-up, recovery, the scaler and the close sequence (the node side).
 *
 * @module
 */
import {
  type Compute,
  type Dispatchable,
  type Group,
  isGroup,
  isPending,
  type Pending,
} from "../compute.ts";
import { createConsole, defaultConsoleMode } from "./console.ts";
import {
  BudgetExceededError,
  ConfigError,
  PoolClosedError,
  ProvisioningError,
  TaskCancelledError,
} from "../errors.ts";
import { Heartbeat } from "./deadman.ts";
import type { EventInit, PoolEvent } from "../events.ts";
import { logger } from "../log.ts";
import { after } from "../_timers.ts";
import { mapResults } from "./map.ts";
import type { Job } from "./job.ts";
import {
  isGated,
  isGone,
  isLeaving,
  type PoolNode,
  takesWork,
} from "./node_state.ts";
import { ClusterView } from "./cluster.ts";
import { EventHub } from "./event_hub.ts";
import {
  type MapResults,
  type RunResult,
  runResult,
  type TaskHandle,
} from "./handles.ts";
import { Scheduler } from "./scheduler.ts";
import { splitStreams, teeArgs } from "./remote_stream.ts";
import type { Instance, Provider } from "../provider.ts";
import { track, untrack } from "./teardown.ts";
import { CollectionService } from "../collections/service.ts";
import * as coll from "../collections/handles.ts";
import {
  checkClientPermissions,
  checkNodeLimits,
  checkNotOnWorker,
  type PoolOptions,
  type ResolvedOptions,
  resolveOptions,
  type RunOptions,
  specRequests,
} from "./options.ts";
import { Provisioner, type ProvisionerHooks } from "./provisioner.ts";
import { BringUp, type BringUpHooks } from "./bring_up.ts";
import { Recovery, type RecoveryHooks } from "./recovery.ts";
import { Scaler, type ScalerHooks } from "./scaler.ts";
import { shutdown } from "./shutdown.ts";
import { type PoolWatch, watchPool } from "../dashboard/watch.ts";
import { KeepAlive } from "./keep_alive.ts";
import { BudgetGuard, checkPricing, DEFAULT_COST_INTERVAL } from "./budget.ts";
import { poolClock, type PoolSpend, reportCost, Spend } from "./spend.ts";

const log = logger("pool");

export type { NodesOptions } from "./elastic.ts";
export type { HealthCheckOptions } from "./health.ts";
export type { PoolOptions, RunOptions } from "./options.ts";
export type { PoolSpend } from "./spend.ts";

let poolCounter = 0;

/** Why the other tasks of a group are cancelled when one fails. */
const GROUP_FAILED = "cancelled because another task of its group failed";

/**
 * A set of nodes that run tasks. Start one with
 * {@linkcode ComputePool.start} and close it with `await using` or
 * {@linkcode ComputePool.close}.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { square } from "../../examples/parallel.ts";
 *
 * await using pool = await sky.ComputePool.start({
 *   provider: sky.Local(),
 *   nodes: 2,
 *   console: "silent",
 * });
 * console.log(await pool.run(square(4))); // 16
 * console.log(await pool.run(sky.gather(square(1), square(2)))); // [1, 4]
 * ```
 */
export class ComputePool implements AsyncDisposable {
  /** The pool's id, also the cluster id at the provider and `instanceInfo().jobId`. */
  readonly id: string;
  #options: ResolvedOptions;
  #hub: EventHub;
  #scheduler: Scheduler;
  /** Ranks and the cluster view. */
  #view: ClusterView;
  #provisioner: Provisioner;
  #bringUp: BringUp;
  #recovery: Recovery;
  #scaler: Scaler;
  #startedAt = Date.now();
  /** The nodes by rank; a rank is free where it holds nothing or a gone node. */
  #nodes: (PoolNode | undefined)[] = [];
  #closing: Promise<void> | undefined;
  #closed = false;
  /** Provider calls and node bring-ups under way; closing waits for them. */
  #inflight = new Set<Promise<unknown>>();
  #heartbeat: Heartbeat | undefined;
  #ttl: (() => void) | undefined;
  /** The last node given up for good, once no node is left. */
  #abandoned: { node: number; reason: string } | undefined;
  /** Keeps the program alive while the pool works. */
  #keepAlive: KeepAlive;
  #collections: CollectionService;
  /** The dashboard and the event log, when asked for. */
  #watch: PoolWatch | undefined;
  /** What the machines cost so far. */
  #spend: Spend;
  /** Keeps the pool within its budget. */
  #guard: BudgetGuard;
  /** Stops the `Cost` reports. */
  #stopCost: () => void = () => {};
  /** Why the budget closed the pool, once it did. */
  #overBudget: BudgetExceededError | undefined;

  private constructor(options: ResolvedOptions) {
    this.id = `sky-${Date.now().toString(36)}-${(poolCounter++).toString(36)}${
      crypto.randomUUID().slice(0, 4)
    }`;
    this.#options = options;
    this.#keepAlive = new KeepAlive(
      () => this.#scheduler.pending > 0,
      (busy) => this.#watch?.hold(busy),
    );
    this.#hub = new EventHub({
      pool: this.id,
      onEvent: options.onEvent,
      console: createConsole(options.console ?? defaultConsoleMode()),
    });
    this.#spend = new Spend(poolClock());
    this.#guard = new BudgetGuard({
      spend: this.#spend,
      interval: options.costInterval ?? DEFAULT_COST_INTERVAL,
      emit: (event) => this.#emit(event),
      exceeded: (error) => {
        this.#overBudget = error;
        this.#close(error).catch((e) =>
          log.error("Closing pool {id} failed: {e}", { id: this.id, e })
        );
      },
    });
    this.#view = new ClusterView({
      nodes: () => this.#nodes,
      closed: () => this.#closed,
    });
    this.#scheduler = new Scheduler({
      ...options.worker,
      provisionTimeout: options.provisionTimeout,
      image: options.image,
      taskTimeout: options.taskTimeout,
      moduleOf: (url) => this.#bringUp.modules().get(url),
      nodes: () => this.#nodes,
      closed: () => this.#closed,
      emit: (event) => this.#emit(event),
      starting: () => this.#view.joining.size + this.#scaler.provisioning,
      abandoned: () => this.#abandoned,
      activity: () => this.#keepAlive.check(),
      backlog: () => {
        if (this.#scaler.elastic) this.#scaler.soon();
      },
    });
    this.#collections = new CollectionService(options.collections);
    // What the node side's collaborators ask of the pool: each reads its part.
    const hooks: ProvisionerHooks & BringUpHooks & RecoveryHooks & ScalerHooks =
      {
        poolId: this.id,
        collections: this.#collections,
        spend: this.#spend,
        guard: this.#guard,
        emit: (event) => this.#emit(event),
        closed: () => this.#closed,
        nodes: () => this.#nodes,
        joining: () => this.#view.joining,
        track: (promise) => this.#track(promise),
        reserve: (address, freeing) => {
          const index = this.#view.freeRank(freeing);
          this.#view.joining.set(index, address);
          return index;
        },
        addressed: (index, address) => {
          if (this.#view.joining.has(index)) {
            this.#view.joining.set(index, address);
          }
        },
        unreserve: (index) => this.#view.joining.delete(index),
        clusterView: () => this.#view.view(),
        announce: () => this.#view.announce(),
        drain: () => this.#scheduler.drain(),
        probe: (node) => this.#probe(node),
        lost: (node, session, why) => this.#recovery.lost(node, session, why),
        startWorker: (node, admitted) =>
          this.#bringUp.startWorker(node, admitted),
        join: (instance: Instance, freeing?: number) =>
          this.#bringUp.join(instance, freeing),
        abandoned: (node, reason) => this.#abandon(node.index, reason),
        retryOnInterruption: options.retryOnInterruption,
        concurrency: options.worker.concurrency,
        settle: (job, error) => this.#scheduler.settle(job, error),
        requeue: (jobs) => this.#scheduler.requeue(jobs),
        watchStarvation: () => this.#scheduler.watchStarvation(),
        busy: () => this.#scheduler.jobs.size > 0,
        waiting: () => this.#scheduler.waiting(),
        starved: (error) => {
          for (const job of [...this.#scheduler.jobs.values()]) {
            if (!job.probe) this.#scheduler.settle(job, error);
          }
        },
      };
    const provider = options.provider ?? options.specs![0].provider;
    this.#provisioner = new Provisioner(provider, hooks);
    this.#bringUp = new BringUp(options, this.#provisioner, hooks);
    this.#recovery = new Recovery(this.#provisioner, hooks);
    this.#scaler = new Scaler(options.nodes, this.#provisioner, hooks);
  }

  /**
   * Starts a pool: provisions the nodes, ships the code, starts the workers,
   * and resolves once enough nodes are ready.
   *
   * @param options The provider, the number of nodes and the rest.
   * @returns The ready pool.
   * @throws {ConfigError} (as a rejection) When an option is invalid, or when
   *   called while a worker imports the module (a missing `import.meta.main` guard).
   * @throws {ProvisioningError} (as a rejection) When the nodes could not be brought up;
   *   everything launched is released first.
   * @throws The reason of `options.signal` (as a rejection) When it aborts
   *   the start; everything launched is released first.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   *
   * // Give up starting after 30 s, or once stop.abort() is called (on Ctrl-C, say).
   * const stop = new AbortController();
   * await using pool = await sky.ComputePool.start({
   *   provider: sky.Local(),
   *   console: "silent",
   *   signal: AbortSignal.any([stop.signal, AbortSignal.timeout(30_000)]),
   * });
   * console.log(pool.size); // 1
   * ```
   */
  static async start(options: PoolOptions): Promise<ComputePool> {
    checkNotOnWorker();
    const resolved = resolveOptions(options);
    checkNodeLimits(resolved);
    checkClientPermissions(resolved);
    resolved.signal?.throwIfAborted();
    const pool = new ComputePool(resolved);
    track(pool);
    const release = pool.#keepAlive.hold();
    try {
      pool.#watch = await watchPool({
        pool: pool.id,
        startedAt: pool.#startedAt,
        provider: pool.provider.name,
        options: resolved,
        events: pool.#hub.events,
        queued: () => pool.#scheduler.waiting(),
      });
      pool.#keepAlive.check();
      await pool.#start();
    } catch (error) {
      await pool.close().catch(() => {});
      // The budget closed the pool while it started: that is why it failed.
      if (pool.#overBudget) throw pool.#overBudget;
      if (
        error instanceof ConfigError || error instanceof ProvisioningError ||
        error instanceof BudgetExceededError ||
        resolved.signal?.aborted && error === resolved.signal.reason
      ) {
        throw error;
      }
      throw new ProvisioningError(
        `Cannot start pool on ${pool.provider.name}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    } finally {
      release();
    }
    return pool;
  }

  /** The dashboard's address, token included, when started with `dashboard`. */
  get dashboardUrl(): string | undefined {
    return this.#watch?.url;
  }

  /**
   * The provider the nodes come from: with `specs`, the one whose offer was
   * chosen (the first spec's until then).
   */
  get provider(): Provider<any> {
    return this.#provisioner.provider;
  }

  /** How many nodes are ready and take tasks (admitted by their health check, not leaving). */
  get size(): number {
    return this.#nodes.filter((n) => takesWork(n)).length;
  }

  /** The process ids of the workers, by node (on their machines). */
  get workerPids(): (number | undefined)[] {
    return this.#nodes.map((n) => n?.session?.pid);
  }

  /** Whether the pool is closed or closing. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * What the pool has spent so far and spends now, and the budget in force
   * (the chosen spec's, or the pool's), as of this moment; the `Cost`
   * events report the same figures every `costInterval`.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   *
   * await using pool = await sky.ComputePool.start({
   *   provider: sky.Local({ pricePerHour: 0.5 }),
   *   budget: { maxCost: 10 },
   *   console: "silent",
   * });
   * const { spent, ratePerHour, budget } = pool.spend;
   * console.log(spent >= 0, ratePerHour, budget); // true 0.5 { maxCost: 10, warnAt: 8 }
   * ```
   */
  get spend(): PoolSpend {
    const budget = this.#guard.limit;
    return {
      spent: this.#spend.spent(),
      ratePerHour: this.#spend.ratePerHour(),
      ...budget && { budget: { ...budget } },
    };
  }

  /**
   * Every event of the pool: the lifecycle events so far (task, log and cost events
   * are not replayed), then each new one, until the pool is closed.
   */
  get events(): AsyncIterable<PoolEvent> {
    return this.#hub.events;
  }

  #emit(init: EventInit): void {
    this.#hub.emit(init);
  }

  async #start(): Promise<void> {
    const options = this.#options;
    this.#heartbeat = new Heartbeat(
      options.deadManSwitch.heartbeatInterval,
      () => {
        for (const node of this.#nodes) node?.session?.ping();
      },
    );
    const ttl = options.deadManSwitch.ttl;
    if (ttl !== undefined) {
      this.#ttl = after(ttl, () => {
        log.warn("Pool {id} reached its ttl ({ttl} ms): closing it", {
          id: this.id,
          ttl,
        });
        this.close().catch((error) =>
          log.error("Closing pool {id} failed: {error}", { id: this.id, error })
        );
      }, { keepAlive: false });
    }
    await this.#collections.open({ poolId: this.id });
    this.#stopCost = reportCost(
      this.#spend,
      options.costInterval ?? DEFAULT_COST_INTERVAL,
      (event) => this.#emit(event),
    );
    await this.#provisioner.provisionCluster(specRequests(options, this.id), {
      check: (candidates) =>
        checkPricing(candidates, options.costInterval !== undefined),
      selection: options.selection,
      wanted: options.nodes.min,
      timeout: options.provisionTimeout,
      signal: options.signal,
    }, {
      prepareCode: () => this.#bringUp.prepareCode(),
      join: (instance) => this.#bringUp.join(instance),
    });
    this.#emit({
      type: "ClusterReady",
      nodes: this.size,
      elapsedMs: Date.now() - this.#startedAt,
    });
    const scaling = this.#scaler.scaling;
    if (scaling.max > scaling.min) this.#scaler.watch();
  }

  /** Keeps a promise in view until it settles, so that closing waits for it. */
  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inflight.add(promise);
    promise.then(
      () => this.#inflight.delete(promise),
      () => this.#inflight.delete(promise),
    );
    return promise;
  }

  /**
   * A node was given up for good: an elastic pool starts another; a pool
   * left with no node fails its tasks (none can run).
   */
  #abandon(node: number, reason: string): void {
    const scaling = this.#scaler.scaling;
    if (scaling.max > scaling.min) return this.#scaler.scale();
    if (this.#nodes.some((n) => n && !isGone(n))) return;
    this.#abandoned = { node, reason };
    const error = this.#scheduler.hopeless();
    if (error) {
      for (const job of [...this.#scheduler.jobs.values()]) {
        this.#scheduler.settle(job, error);
      }
    }
  }

  /** Runs the health check once on a node, pinned to it. */
  #probe(node: PoolNode): Promise<unknown> {
    const health = this.#options.healthCheck!;
    const job = this.#scheduler.create(health.fn(), node.index);
    job.probe = true;
    job.attempts = Infinity;
    job.timeout = health.timeout;
    return this.#scheduler.submit(job);
  }

  /**
   * Grows or shrinks the pool to `nodes` nodes, which become its `min` (and
   * its `max`, when above it): an elastic pool keeps scaling between the
   * two. Shrinking retires idle nodes first, then the highest ranks; a
   * retired node takes no new task, finishes the ones it holds, and then
   * leaves, so no task is lost. Resolves once the new nodes are ready, or
   * the retired ones released.
   *
   * @param nodes How many nodes the pool should have.
   * @returns Once the pool has that many.
   * @throws {RangeError} (as a rejection) When `nodes` is not a non-negative integer.
   * @throws {ProvisioningError} (as a rejection) When some new nodes could not be started.
   * @throws {PoolClosedError} (as a rejection) When the pool is closed.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * await pool.resize(2);
   * console.log(pool.size); // 2
   * await pool.resize(1);
   * console.log(await pool.run(square(3)), pool.size); // 9 1
   * ```
   */
  async resize(nodes: number): Promise<void> {
    this.#scaler.check(nodes);
    if (this.#closed) throw new PoolClosedError();
    const release = this.#keepAlive.hold();
    try {
      await this.#scaler.resize(nodes);
    } finally {
      release();
    }
  }

  /** Builds and queues the jobs of a task or group; rejects synchronously-built failures. */
  #dispatch<R>(
    task: Dispatchable<R>,
    options: RunOptions,
  ): { jobs: Job[]; results: Promise<unknown>[] } {
    if (!isGroup(task) && !isPending(task)) {
      throw new TypeError(
        `Cannot run ${
          task === null ? "null" : typeof task
        }: expected a task (call a compute to ` +
          `build one) or a group from sky.gather() or sky.all()`,
      );
    }
    const tasks = isGroup(task)
      ? (task as Group<R>).tasks
      : [task as Pending<unknown>];
    const jobs = this.#jobsOf(tasks, options.node);
    return { jobs, results: this.#scheduler.submitAll(jobs, options.signal) };
  }

  /** Jobs for tasks, pinned to node `pin` when given: a node of the pool. */
  #jobsOf(tasks: readonly Pending<unknown>[], pin: number | undefined): Job[] {
    const absent = pin === undefined ? undefined : this.#view.pinError(pin);
    if (absent) throw absent;
    return tasks.map((t) => this.#scheduler.create(t, pin));
  }

  /**
   * Runs a task, or a group of tasks, and resolves to the result: `R` for a
   * task, `R[]` for `gather`, a typed tuple for `all`. When one task of a
   * group fails, the others are cancelled and the error is rethrown.
   *
   * A task whose result streams (an async generator compute, or one that
   * returns an `AsyncIterable` or a `ReadableStream`) resolves to an
   * `AsyncIterable` of the items as the worker yields them, as soon as the
   * function has returned; the returned promise can also be iterated
   * directly: `for await (const x of pool.run(gen()))`. Leaving the loop
   * early returns the generator on the worker (its `finally` runs there)
   * and waits for it. An error thrown mid-stream reaches the loop after the
   * items yielded before it; a node lost mid-stream fails the loop with
   * `NodeLostError` (a streaming task is never sent again). Arguments that
   * are `AsyncIterable`s or `ReadableStream`s stream to the worker, with
   * backpressure, as the same kind.
   *
   * @param task A task (`square(2)`) or a group (`sky.gather(...)`, `sky.all(...)`).
   * @param options An `AbortSignal` that cancels it.
   * @returns The result.
   * @throws {RemoteError} (as a rejection) When the task threw on the worker.
   * @throws {SerializationError} (as a rejection) When an argument or the result cannot be sent.
   * @throws {TaskTimeoutError} (as a rejection) When the task ran past its timeout.
   * @throws {PoolClosedError} (as a rejection) When the pool closed first.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * const n: number = await pool.run(square(3)); // 9
   * const [a, b] = await pool.run(sky.all(square(1), square(2))); // [1, 4]
   * console.log(n, a, b);
   * ```
   *
   * @example Streaming
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { countdown } from "../../examples/streaming.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * for await (const n of pool.run(countdown(3))) console.log(n); // 3, 2, 1
   * ```
   */
  run<R>(task: Dispatchable<R>, options: RunOptions = {}): RunResult<R> {
    return runResult(this.#run(task, options));
  }

  async #run<R>(task: Dispatchable<R>, options: RunOptions): Promise<R> {
    const { jobs, results } = this.#dispatch(task, options);
    if (!isGroup(task)) return await results[0] as R;
    try {
      return await Promise.all(results) as R;
    } catch (error) {
      this.#scheduler.abortAll(jobs, GROUP_FAILED);
      throw error;
    }
  }

  /**
   * Sends a task without waiting: the handle is a promise of the result with
   * a `cancel()` method.
   *
   * @param task A task or a group.
   * @returns A handle to await or cancel.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * const handle = pool.submit(square(5));
   * console.log(await handle); // 25
   * ```
   */
  submit<R>(
    task: Dispatchable<R>,
    options: Omit<RunOptions, "signal"> = {},
  ): TaskHandle<R> {
    const controller = new AbortController();
    let promise: Promise<R>;
    let id = 0;
    try {
      if (isPending(task)) {
        const { jobs, results } = this.#dispatch(task, {
          ...options,
          signal: controller.signal,
        });
        id = jobs[0].id;
        promise = results[0] as Promise<R>;
      } else {
        promise = this.run(task, { ...options, signal: controller.signal });
      }
    } catch (error) {
      promise = Promise.reject(error);
    }
    return {
      id,
      then: (onFulfilled, onRejected) => promise.then(onFulfilled, onRejected),
      cancel: () => controller.abort(),
    };
  }

  /**
   * Runs a task once on every ready node and resolves to the results by
   * node index. Fails if any node's task fails. A streamed result gives one
   * iterable per node; a streamed argument reaches every node whole (read
   * once from its source, at the pace of the slowest node).
   *
   * @param task The task to run everywhere.
   * @returns One result per node, `results[i]` from node `i`.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { workerInfo } from "../../examples/broadcast.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), nodes: 2, console: "silent" });
   * console.log((await pool.broadcast(workerInfo())).map((i) => i.node)); // [0, 1]
   * ```
   */
  async broadcast<R>(task: Pending<R>, options: RunOptions = {}): Promise<R[]> {
    if (!isPending(task)) {
      throw new TypeError(
        `Cannot broadcast ${typeof task}: expected a task (call a compute)`,
      );
    }
    // Every node that is up (admitted, not leaving), or restarting its worker.
    const nodes = this.#nodes.filter((n): n is PoolNode =>
      n !== undefined && !isGone(n) && n.session !== undefined &&
      !isGated(n) && !isLeaving(n)
    );
    if (this.#closed) throw new PoolClosedError();
    const hopeless = nodes.length === 0
      ? this.#scheduler.hopeless()
      : undefined;
    if (hopeless) throw hopeless;
    // A streamed argument is split: every node gets every item.
    const streamed = splitStreams(task.args);
    const copies = streamed &&
      teeArgs(task.args, streamed.streams, nodes.length);
    const tasks = nodes.map((_, k) => {
      if (!copies) return task as Pending<unknown>;
      const copy = task.compute(...copies[k]) as Pending<unknown>;
      return task.timeout === undefined ? copy : copy.withTimeout(task.timeout);
    });
    const jobs = nodes.map((node, k) =>
      this.#scheduler.create(tasks[k], node.index)
    );
    const results = this.#scheduler.submitAll(jobs, options.signal);
    try {
      return await Promise.all(results) as R[];
    } catch (error) {
      this.#scheduler.abortAll(jobs, GROUP_FAILED);
      throw error;
    }
  }

  /**
   * Runs a group and yields each result as it arrives: in the group's order,
   * or in completion order with `{ ordered: false }`. Leaving the loop early
   * cancels the tasks still running.
   *
   * @param group A group from `sky.gather(...)`.
   * @param options `ordered` (default `true`) and an `AbortSignal`.
   * @returns The results, as an async iterable.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * for await (const r of pool.stream(sky.gather(square(1), square(2)), { ordered: false })) {
   *   console.log(r);
   * }
   * ```
   */
  async *stream<R>(
    group: Group<R[]> | Group<readonly R[]>,
    options: RunOptions & { ordered?: boolean } = {},
  ): AsyncGenerator<R, void, undefined> {
    if (!isGroup(group)) {
      throw new TypeError(
        `Cannot stream ${typeof group}: expected a group from sky.gather()`,
      );
    }
    const { jobs, results } = this.#dispatch(group as Group<R[]>, options);
    try {
      if (options.ordered ?? true) {
        for (const result of results) yield await result as R;
      } else {
        const pending = new Map(
          results.map((p, i) => [i, p.then((v) => [i, v] as const)]),
        );
        while (pending.size > 0) {
          const [i, value] = await Promise.race(pending.values());
          pending.delete(i);
          yield value as R;
        }
      }
    } finally {
      this.#scheduler.abortAll(
        jobs,
        "cancelled: the stream was left early or failed",
      );
      for (const result of results) result.catch(() => {});
    }
  }

  /**
   * Applies a one-argument compute to every item, a bounded number in flight
   * at a time. Iterate the results as they come, or await them all.
   *
   * The inputs are read as they arrive (an async iterable of unknown
   * length, such as a queue or a socket, works), while fewer than a window
   * of results (twice the pool's task slots) is pending; each result is
   * yielded as soon as it is ready: the first of the pending ones in input
   * order, or any with `{ ordered: false }` (the JavaScript shape of
   * Modal's `.map` and Ray's `ray.wait`). A consumer that stops reading
   * holds the inputs back. A failed task ends the loop with its error;
   * leaving the loop cancels the tasks in flight.
   *
   * @param compute The compute to apply.
   * @param items The inputs: an array, any iterable, or an async iterable.
   * @param options `ordered` (default `true`): results in input order, else as they complete.
   * @returns The results.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * import { square } from "../../examples/parallel.ts";
   *
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * console.log(await pool.map(square, [1, 2, 3])); // [1, 4, 9]
   * ```
   */
  map<A, R>(
    compute: Compute<[A], R>,
    items: Iterable<A> | AsyncIterable<A>,
    options: RunOptions & { ordered?: boolean } = {},
  ): MapResults<R> {
    const results = () =>
      mapResults<A, R>(items, (item) => {
        const [job] = this.#jobsOf(
          [compute(item) as Pending<unknown>],
          options.node,
        );
        return {
          result: this.#scheduler.submit(job),
          cancel: (reason) => this.#scheduler.abort(job, reason),
        };
      }, {
        // An elastic pool may grow: enough tasks are in flight to make it.
        window: Math.max(
          2,
          Math.max(this.size, this.#scaler.scaling.max) *
            this.#scheduler.capacity() *
            2,
        ),
        ordered: options.ordered ?? true,
        signal: options.signal,
        aborted: () => new TaskCancelledError(compute.id.name, "aborted"),
      });
    return {
      [Symbol.asyncIterator]: () => results(),
      then: (onFulfilled, onRejected) =>
        Array.fromAsync(results()).then(onFulfilled, onRejected),
    };
  }

  /**
   * Closes the pool: rejects queued and running tasks with `PoolClosedError`,
   * stops the workers and releases every machine (in the order
   * `shutdown.ts` gives). Safe to call twice.
   *
   * @returns Once everything is released.
   */
  close(): Promise<void> {
    return this.#close();
  }

  /**
   * Closes the pool, failing its tasks with `error` (`PoolClosedError` when
   * the caller closes it, `BudgetExceededError` when the budget does).
   */
  #close(error?: Error): Promise<void> {
    if (!this.#closing) {
      const release = this.#keepAlive.hold();
      this.#closed = true;
      this.#closing = shutdown({
        poolId: this.id,
        startedAt: this.#startedAt,
        error,
        cost: () => this.#spend.priced ? this.#spend.spent() : undefined,
        stopTimers: () => {
          this.#guard.stop();
          this.#stopCost();
          this.#scaler.stop();
          for (const node of this.#nodes) node?.health?.stop();
          this.#heartbeat?.stop();
          this.#ttl?.();
        },
        failTasks: (error) => this.#scheduler.close(error),
        nodes: this.#nodes,
        hosts: this.#bringUp.hosts,
        inflight: this.#inflight,
        provisioner: this.#provisioner,
        emit: (event) => this.#emit(event),
        endEvents: () => {
          this.#hub.close();
          untrack(this);
        },
      }).finally(() => this.#collections.close())
        .finally(() => this.#watch?.close()).finally(release)
        .finally(() => this.#keepAlive.dispose());
    }
    return this.#closing;
  }
  /**
   * The pool's dict `name`, which its tasks name `sky.dict(name)`; the other
   * kinds follow.
   *
   * @example
   * ```ts
   * import * as sky from "../../mod.ts";
   * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
   * console.log(await pool.counter("hits").add(2)); // 2
   * ```
   */
  dict<V = unknown>(name: string): coll.Dict<V> {
    return new coll.Dict<V>(name, this.#collections.caller);
  }
  /** The pool's set `name` (see {@linkcode ComputePool.dict}). */
  set<V = unknown>(name: string): coll.SharedSet<V> {
    return new coll.SharedSet<V>(name, this.#collections.caller);
  }
  /** The pool's counter `name` (see {@linkcode ComputePool.dict}). */
  counter(name: string): coll.Counter {
    return new coll.Counter(name, this.#collections.caller);
  }
  /** The pool's queue `name` (see {@linkcode ComputePool.dict}). */
  queue<V = unknown>(name: string): coll.Queue<V> {
    return new coll.Queue<V>(name, this.#collections.caller);
  }
  /** The pool's barrier `name` for `parties` callers (see {@linkcode ComputePool.dict}). */
  barrier(name: string, parties: number): coll.Barrier {
    return new coll.Barrier(name, parties, this.#collections.caller);
  }
  /** The pool's lock `name` (see {@linkcode ComputePool.dict}). */
  lock(name: string): coll.Lock {
    return new coll.Lock(name, this.#collections.caller);
  }

  /** Kills every worker at once, without waiting (used when the process exits). */
  kill(): void {
    for (const node of this.#nodes) node?.session?.kill();
  }

  /** Closes the pool; what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

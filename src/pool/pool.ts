/**
 * `ComputePool`: provisions nodes through a provider, ships the code, starts
 * a worker on each node and runs tasks there; closing it releases
 * everything, also when the program fails or is interrupted. The class holds
 * the public verbs and the wiring of its collaborators: the provisioner,
 * the bring-up, recovery, the scaler and the close sequence (each in a file
 * of its own).
 *
 * @module
 */
import { decode, encode } from "../wire/codec.ts";
import {
  type Compute,
  type Dispatchable,
  type Group,
  isGroup,
  isPending,
  type Pending,
} from "../compute.ts";
import {
  type ConsoleSink,
  createConsole,
  defaultConsoleMode,
} from "./console.ts";
import {
  ConfigError,
  NodeLostError,
  PoolClosedError,
  ProvisioningError,
  RemoteError,
  TaskCancelledError,
  TaskTimeoutError,
} from "../errors.ts";
import { Heartbeat } from "./deadman.ts";
import type { EventInit, PoolEvent } from "../events.ts";
import type { InstanceInfo } from "../instance.ts";
import { logger } from "../log.ts";
import { after } from "../_timers.ts";
import { mapResults } from "./map.ts";
import type { Job } from "./job.ts";
import {
  isAdmitted,
  isAdmitting,
  isBusy,
  isGone,
  isReady,
  isRetiring,
  isStaying,
  type PoolNode,
  takesWork,
} from "./node_state.ts";
import { splitStreams, StreamedCall, teeArgs } from "./remote_stream.ts";
import { SANDBOX_OUT_OF_MEMORY } from "../wire/messages.ts";
import { explainDenied, sandboxSpecOf } from "../sandbox.ts";
import type { Instance, Provider } from "../provider.ts";
import { track, untrack } from "./teardown.ts";
import {
  checkClientPermissions,
  checkNodeLimits,
  checkNotOnWorker,
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

const log = logger("pool");

export type { NodesOptions } from "./elastic.ts";
export type { HealthCheckOptions } from "./health.ts";
export type { PoolOptions, RunOptions } from "./options.ts";
import type { PoolOptions } from "./options.ts";

/**
 * A task refused a permission in its sandbox: the same error, with advice
 * naming the compute and the option to add instead of Deno's "run again
 * with --allow-…".
 */
function withPermissionAdvice(error: Error, job: Job): Error {
  if (
    !(error instanceof RemoteError) || error.remoteName !== "NotCapable"
  ) return error;
  const said = error.message.slice("NotCapable: ".length);
  // Refused while loading a module: unless it is a remote import the task
  // asked for, the compute's permissions are not what is missing.
  if (
    (error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND" &&
    !/^Requires (import|net) access/.test(said)
  ) return error;
  const advice = explainDenied(
    said,
    job.name,
    job.spec.kind === "deno" ? job.spec.permissions : undefined,
  );
  if (!advice) return error;
  return reworded(error, said, advice);
}

/**
 * A task's sandbox ran out of memory (a `SandboxError` with code
 * `ERR_SANDBOX_OUT_OF_MEMORY`): the same error, naming the compute and its
 * `memoryLimit`, and how to raise it.
 */
function withMemoryAdvice(error: Error, job: Job): Error {
  const marked = error as { code?: unknown; heapLimitMb?: unknown };
  if (
    !(error instanceof RemoteError) || error.remoteName !== "SandboxError" ||
    marked.code !== SANDBOX_OUT_OF_MEMORY
  ) return error;
  const said = error.message.slice("SandboxError: ".length);
  const limit = job.spec.kind === "deno" ? job.spec.memoryLimit : undefined;
  const mib = limit === undefined
    ? Number(marked.heapLimitMb)
    : Math.round(limit / 2 ** 20 * 100) / 100;
  const loading = said.includes("loading");
  const what = limit === undefined
    ? `the default heap limit of its sandbox, ${mib} MiB (it sets no memoryLimit)`
    : `its memoryLimit of ${mib} MiB`;
  const advice =
    `compute '${job.name}' exceeded ${what}${
      loading
        ? " while its sandbox loaded its module (the module, its imports and this library count too)"
        : ""
    }. Its sandbox was stopped and is replaced for the next task. ` +
    `To allow more, raise it where the compute is defined: sky.compute(fn, { memoryLimit: ${
      Math.max(2 * Math.ceil(mib), 64)
    } * 2 ** 20 })`;
  return reworded(error, said, advice);
}

/**
 * A remote error told better: the same error (remote name, cause, node and
 * every field the worker sent) whose message, and its line in the remote
 * stack, say `advice` instead of `said`.
 */
function reworded(error: RemoteError, said: string, advice: string): Error {
  const better = new RemoteError({
    name: error.remoteName,
    message: advice,
    stack: error.remoteStack?.replace(said, advice),
  }, { cause: error.cause, node: error.node });
  for (const [key, value] of Object.entries(error)) {
    if (!(key in better)) {
      Object.defineProperty(better, key, { value, enumerable: true });
    }
  }
  return better;
}

/**
 * A task in flight: await it for its result, or cancel it.
 *
 * @typeParam R The task's result.
 */
export interface TaskHandle<R> extends PromiseLike<R> {
  /** The task's id in events. */
  readonly id: number;
  /** Cancels the task; awaiting it then rejects with `TaskCancelledError`. */
  cancel(): void;
}

/**
 * What {@linkcode ComputePool.run} returns: a promise of the result, which
 * for a streamed result (an `AsyncIterable<T>`) can also be iterated
 * directly.
 *
 * @typeParam R The task's (or group's) result.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { countdown } from "../../examples/streaming.ts";
 *
 * await using pool = await sky.ComputePool.start({ provider: sky.Local(), console: "silent" });
 * const stream: sky.RunResult<AsyncIterable<number>> = pool.run(countdown(2));
 * for await (const n of stream) console.log(n); // 2, 1
 * ```
 */
export type RunResult<R> = [R] extends [never] ? Promise<R>
  : [R] extends [AsyncIterable<infer T>] ? Promise<R> & AsyncIterable<T>
  : Promise<R>;

async function* iterateResult<T>(
  result: Promise<unknown>,
): AsyncGenerator<T, void, undefined> {
  const value = await result;
  if (
    typeof value !== "object" || value === null ||
    typeof (value as AsyncIterable<T>)[Symbol.asyncIterator] !== "function"
  ) {
    throw new TypeError(
      "Cannot iterate the result of pool.run(): the task's result is not a stream " +
        "(await it instead)",
    );
  }
  yield* value as AsyncIterable<T>;
}

/**
 * Results of {@linkcode ComputePool.map}: iterate them as they come, or
 * await them all.
 */
export interface MapResults<R> extends AsyncIterable<R>, PromiseLike<R[]> {}
const HISTORY_LIMIT = 1_000;
/** Tasks completing closer together than this, in ms, are short enough to prefetch. */
const SHORT_TASK_MS = 1;

let poolCounter = 0;

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
  #console: ConsoleSink;
  #history: PoolEvent[] = [];
  #subscribers = new Set<(e: PoolEvent | null) => void>();
  #startedAt = Date.now();
  /** The nodes by rank; a rank is free where it holds nothing or a gone node. */
  #nodes: (PoolNode | undefined)[] = [];
  /** Jobs not yet sent that may run on any node, consumed from `#head`. */
  #queue: Job[] = [];
  #head = 0;
  #jobs = new Map<number, Job>();
  #nextTask = 1;
  #rr = 0;
  #closing: Promise<void> | undefined;
  #closed = false;
  /** Ranks of nodes still starting, with their private address. */
  #joining = new Map<number, string>();
  /** Provider calls and node bring-ups under way; closing waits for them. */
  #inflight = new Set<Promise<unknown>>();
  #heartbeat: Heartbeat | undefined;
  #ttl: (() => void) | undefined;
  /** The last node given up for good, once no node is left. */
  #abandoned: { node: number; reason: string } | undefined;
  /** Cancels the timer that fails tasks waiting for a node past provisionTimeout. */
  #starving: (() => void) | undefined;
  /** Work of the pool's own (starting, resizing, closing) the program waits for. */
  #keepers = 0;
  /**
   * The timer that keeps the program alive while the pool works. The
   * workers' processes do not: a pool that idles lets the program end (and
   * the teardown closes it then).
   */
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #provisioner: Provisioner;
  #bringUp: BringUp;
  #recovery: Recovery;
  #scaler: Scaler;

  private constructor(options: ResolvedOptions) {
    this.id = `sky-${Date.now().toString(36)}-${(poolCounter++).toString(36)}${
      crypto.randomUUID().slice(0, 4)
    }`;
    this.#options = options;
    this.#console = createConsole(options.console ?? defaultConsoleMode());
    // What the collaborators ask of the pool: each reads its own part.
    const hooks: ProvisionerHooks & BringUpHooks & RecoveryHooks & ScalerHooks =
      {
        poolId: this.id,
        emit: (event) => this.#emit(event),
        closed: () => this.#closed,
        nodes: () => this.#nodes,
        joining: () => this.#joining,
        track: (promise) => this.#track(promise),
        reserve: (address, freeing) => {
          const index = this.#freeRank(freeing);
          this.#joining.set(index, address);
          return index;
        },
        addressed: (index, address) => {
          if (this.#joining.has(index)) this.#joining.set(index, address);
        },
        unreserve: (index) => this.#joining.delete(index),
        clusterView: () => this.#clusterView(),
        announce: () => this.#announce(),
        drain: () => this.#drain(),
        probe: (node) => this.#probe(node),
        evict: (node, lost) => this.#evict(node, lost),
        lost: (node, session, why) => this.#recovery.lost(node, session, why),
        startWorker: (node, admitted) =>
          this.#bringUp.startWorker(node, admitted),
        join: (instance: Instance, freeing?: number) =>
          this.#bringUp.join(instance, freeing),
        abandoned: (node, reason) => this.#abandon(node.index, reason),
        retryOnInterruption: options.retryOnInterruption,
        concurrency: options.worker.concurrency,
        settle: (job, error) => this.#settle(job, error),
        requeue: (jobs) => this.#queue.splice(this.#head, 0, ...jobs),
        watchStarvation: () => this.#watchStarvation(),
        busy: () => this.#jobs.size > 0,
        waiting: () => {
          let waiting = 0;
          for (let i = this.#head; i < this.#queue.length; i++) {
            if (!this.#queue[i].settled) waiting++;
          }
          return waiting;
        },
        starved: (error) => {
          for (const job of [...this.#jobs.values()]) {
            if (!job.probe) this.#settle(job, error);
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
   * // Give up starting after 30 s, or when the user presses Ctrl-C.
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
    const release = pool.#hold();
    try {
      await pool.#start();
    } catch (error) {
      await pool.close().catch(() => {});
      if (
        error instanceof ConfigError || error instanceof ProvisioningError ||
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

  /**
   * Keeps the program alive until the returned function is called: for the
   * pool's own work that a caller awaits (tasks are counted apart).
   */
  #hold(): () => void {
    this.#keepers++;
    this.#checkKeepAlive();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#keepers--;
      this.#checkKeepAlive();
    };
  }

  /** Holds the program while the pool starts, resizes, closes or runs tasks. */
  #checkKeepAlive(): void {
    const busy = this.#keepers > 0 || this.#jobs.size > 0;
    if (busy && this.#keepAlive === undefined) {
      this.#keepAlive = setInterval(() => {}, 2 ** 30);
    } else if (!busy && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
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
   * Every event of the pool: the lifecycle events so far (task and log events
   * are not replayed), then each new one, until the pool is closed.
   */
  get events(): AsyncIterable<PoolEvent> {
    const history = this.#history.filter((e) =>
      !e.type.startsWith("Task") && e.type !== "Log"
    );
    const subscribers = this.#subscribers;
    const closed = this.#closed && this.#closing === undefined;
    return {
      [Symbol.asyncIterator](): AsyncIterator<PoolEvent> {
        const buffer: (PoolEvent | null)[] = [...history];
        if (closed) buffer.push(null);
        let wake: (() => void) | undefined;
        const subscriber = (e: PoolEvent | null) => {
          buffer.push(e);
          wake?.();
        };
        subscribers.add(subscriber);
        return {
          async next(): Promise<IteratorResult<PoolEvent>> {
            while (buffer.length === 0) {
              await new Promise<void>((r) => wake = r);
            }
            const event = buffer.shift()!;
            if (event === null) {
              subscribers.delete(subscriber);
              return { done: true, value: undefined };
            }
            return { done: false, value: event };
          },
          return(): Promise<IteratorResult<PoolEvent>> {
            subscribers.delete(subscriber);
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
  }

  #emit(init: EventInit): void {
    const event = { ...init, time: Date.now(), pool: this.id } as PoolEvent;
    if (!event.type.startsWith("Task") && event.type !== "Log") {
      this.#history.push(event);
      if (this.#history.length > HISTORY_LIMIT) this.#history.shift();
    }
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      log.warn("onEvent threw: {error}", { error });
    }
    this.#console.event(event);
    for (const subscriber of this.#subscribers) subscriber(event);
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
    await this.#provisioner.provisionCluster(specRequests(options, this.id), {
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
   * A node failed to come up: only its health checks could run there, so
   * its other tasks go back to the queue and its pinned ones fail.
   */
  #evict(node: PoolNode, lost: NodeLostError): void {
    for (const job of [...node.running]) {
      node.running.delete(job);
      job.node = undefined;
      job.timer?.();
      if (job.probe || job.pin !== undefined) this.#settle(job, lost);
      else this.#queue.splice(this.#head, 0, job);
    }
    for (const job of node.pinned.splice(0)) this.#settle(job, lost);
    this.#drain();
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
    const error = this.#hopeless();
    if (error) {
      for (const job of [...this.#jobs.values()]) this.#settle(job, error);
    }
  }

  /** Runs the health check once on a node, pinned to it. */
  #probe(node: PoolNode): Promise<unknown> {
    const health = this.#options.healthCheck!;
    const job = this.#makeJob(health.fn(), node.index);
    job.probe = true;
    job.attempts = Infinity;
    job.timeout = health.timeout;
    const result = new Promise<unknown>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    this.#jobs.set(job.id, job);
    node.pinned.push(job);
    this.#drain();
    return result;
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
    const release = this.#hold();
    try {
      await this.#scaler.resize(nodes);
    } finally {
      release();
    }
  }

  /** Shipped path of each module that defines a compute, by client URL. */
  #moduleMap(): Map<string, string> {
    return this.#bringUp.modules();
  }

  #makeJob(task: Pending<unknown>, pin?: number): Job {
    if (!isPending(task)) {
      throw new TypeError(
        `Cannot run ${typeof task}: expected a task (call a compute to build one) or a group`,
      );
    }
    if (this.#closed) throw new PoolClosedError();
    const compute = task.compute as Compute<unknown[], unknown>;
    const module = this.#moduleMap().get(compute.id.module);
    if (module === undefined) {
      throw new ConfigError(
        `Cannot run '${compute.id.name}': its module ${compute.id.module} was not shipped to the ` +
          `nodes. Import it before ComputePool.start() so that it is part of the code bundle.`,
      );
    }
    const split = splitStreams(task.args);
    const args = encode(split?.args ?? task.args, "args");
    const job: Job = {
      id: this.#nextTask++,
      name: compute.id.name,
      module,
      key: compute.id.key,
      args,
      spec: sandboxSpecOf(compute, this.#options.image),
      timeout: task.timeout ?? compute.options.timeout ??
        this.#options.taskTimeout,
      pin,
      sentAt: 0,
      queuedAt: 0,
      settled: false,
      attempts: 0,
      streams: split?.streams,
      resolve: () => {},
      reject: () => {},
    };
    return job;
  }

  #enqueue(job: Job): Promise<unknown> {
    const promise = new Promise<unknown>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    const hopeless = this.#hopeless();
    if (hopeless) {
      // No node is left and none is coming: waiting would be for ever.
      job.settled = true;
      job.reject(hopeless);
      return promise;
    }
    job.queuedAt = performance.now();
    this.#jobs.set(job.id, job);
    this.#checkKeepAlive();
    if (job.pin === undefined) this.#queue.push(job);
    else this.#nodes[job.pin]!.pinned.push(job);
    this.#drain();
    if (this.#scaler.elastic && this.#head < this.#queue.length) {
      this.#scaler.soon();
    }
    this.#watchStarvation();
    return promise;
  }

  /**
   * Why no task can run, when the pool has no node left and none coming
   * (its last node was given up and no launch is under way).
   */
  #hopeless(): Error | undefined {
    if (
      !this.#abandoned || this.#closed || this.#joining.size > 0 ||
      this.#scaler.provisioning > 0 ||
      this.#nodes.some((n) => n && !isGone(n))
    ) return undefined;
    const { node, reason } = this.#abandoned;
    return new NodeLostError(
      node,
      `${reason}; no node is left, and the pool launches no other: ` +
        `close it and start a new pool, or pool.resize(n) to launch new nodes`,
    );
  }

  /**
   * While the pool has no ready node, fails each task that has waited for
   * one longer than `provisionTimeout` (a replacement that never comes),
   * instead of letting it wait for ever.
   */
  #watchStarvation(): void {
    if (this.#closed || this.size > 0) {
      this.#starving?.();
      this.#starving = undefined;
      return;
    }
    if (this.#starving) return;
    const waiting = [...this.#jobs.values()].filter((j) =>
      !j.node && !j.probe && !j.settled
    );
    if (waiting.length === 0) return;
    const limit = this.#options.provisionTimeout;
    const oldest = Math.min(...waiting.map((j) => j.queuedAt));
    this.#starving = after(oldest + limit - performance.now(), () => {
      this.#starving = undefined;
      if (this.#closed || this.size > 0) return;
      const now = performance.now();
      const lost = this.#abandoned ??
        this.#nodes.findLast((n) => isGone(n));
      for (const job of [...this.#jobs.values()]) {
        if (job.node || job.probe || now - job.queuedAt < limit) continue;
        this.#settle(
          job,
          new ProvisioningError(
            `Cannot run '${job.name}': no node became ready within provisionTimeout (${limit} ms)` +
              (lost
                ? `; the pool has none since node ${
                  "index" in lost ? lost.index : lost.node
                } was lost (${lost.reason})`
                : ""),
          ),
        );
      }
      this.#watchStarvation();
    });
  }

  /**
   * Tasks a node may hold: its slots, plus `prefetch` more while its tasks
   * are short (completions under {@linkcode SHORT_TASK_MS} apart), where the
   * round trip would otherwise dominate. Long tasks get no prefetch, so a
   * slow task never holds queued work back from an idle node.
   */
  #capacity(node?: PoolNode): number {
    const { concurrency, prefetch } = this.#options.worker;
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

  /** The lowest rank no node holds; `also` counts as free. */
  #freeRank(also?: number): number {
    for (let rank = 0;; rank++) {
      const node = this.#nodes[rank];
      const held = this.#joining.has(rank) ||
        node !== undefined && !isGone(node) && rank !== also;
      if (!held) return rank;
    }
  }

  /**
   * The cluster as tasks see it: one entry of `peers` per rank up to the
   * highest rank held (by a ready, starting or leaving node), `""` for a
   * free rank; `totalNodes` is its length.
   */
  #clusterView(): Pick<InstanceInfo, "totalNodes" | "peers" | "headAddr"> {
    const peers: string[] = [];
    const ranks = Math.max(this.#nodes.length - 1, ...this.#joining.keys());
    for (let rank = 0; rank <= ranks; rank++) {
      const node = this.#nodes[rank];
      peers[rank] = this.#joining.get(rank) ??
        (node && !isGone(node) ? node.instance.privateAddress ?? "" : "");
    }
    while (
      peers.length > 0 && peers.at(-1) === "" && !this.#holds(peers.length - 1)
    ) {
      peers.pop();
    }
    // Machines with no private network between them (their provider gives
    // no private address) run standalone: no peers to reach.
    const standalone = peers.every((p) => p === "");
    return {
      totalNodes: peers.length,
      peers: standalone ? [] : peers,
      headAddr: peers[0] ?? "",
    };
  }

  #holds(rank: number): boolean {
    const node = this.#nodes[rank];
    return this.#joining.has(rank) || node !== undefined && !isGone(node);
  }

  /** Sends the current cluster view to every ready worker whose view is older. */
  #announce(): void {
    if (this.#closed) return;
    const view = this.#clusterView();
    const text = JSON.stringify(view);
    for (const node of this.#nodes) {
      if (!isReady(node) || node.view === text) continue;
      node.view = text;
      node.session.updateCluster(view);
    }
  }

  /**
   * Sends queued jobs to nodes with a free slot: each node's pinned jobs
   * first, then the shared queue, round robin over the ready nodes. Settled
   * jobs left in a queue are skipped.
   */
  #drain(): void {
    if (this.#starving && this.size > 0) {
      this.#starving();
      this.#starving = undefined;
    }
    const nodes = this.#nodes;
    for (const node of nodes) {
      if (!isReady(node)) continue;
      if (isAdmitting(node)) {
        // Only its health checks run before it is admitted.
        const probes = node.pinned.filter((j) => j.probe);
        node.pinned = node.pinned.filter((j) => !j.probe);
        for (const job of probes) if (!job.settled) this.#send(job, node);
        continue;
      }
      while (
        node.pinned.length > 0 && node.running.size < this.#capacity(node)
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
        if (
          takesWork(node) && node.running.size < this.#capacity(node)
        ) {
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
    // Health checks report through HealthCheckFailed, not as tasks.
    if (!job.probe) {
      this.#emit({
        type: "TaskStarted",
        task: job.id,
        name: job.name,
        node: node.index,
      });
    }
    if (job.timeout !== undefined) {
      job.timer = after(job.timeout, () => {
        node.session?.cancel(job.id);
        node.session?.forget(job.id);
        this.#settle(job, new TaskTimeoutError(job.name, job.timeout!));
      });
    }
    const session = node.session!;
    const call = new StreamedCall(
      session,
      job.id,
      job.streams ?? [],
      (result) => job.resolve(result),
      () => this.#cancel(job, "its generator did not return when left"),
    );
    job.call = call;
    session.call(
      job.id,
      job.module,
      job.key,
      job.args,
      job.spec,
      call.hooks,
    ).then(
      (payload) => {
        if (call.opened) {
          // A streamed result: its items went to the iterable.
          this.#settle(job, undefined);
          return;
        }
        let value: unknown;
        try {
          value = decode(payload);
        } catch (error) {
          this.#settle(job, error as Error);
          return;
        }
        this.#settle(job, undefined, value);
      },
      (error: Error) => {
        // A lost node's tasks are settled or sent again by #lost.
        if (error instanceof NodeLostError) return;
        if (
          error instanceof TaskCancelledError || error.name === "RemoteError" &&
            (error as { remoteName?: string }).remoteName ===
              "TaskCancelledError"
        ) {
          this.#settle(job, new TaskCancelledError(job.name));
        } else {
          this.#settle(
            job,
            withMemoryAdvice(withPermissionAdvice(error, job), job),
          );
        }
      },
    );
    call.start();
  }

  #settle(job: Job, error: Error | undefined, value?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.timer?.();
    job.call?.end(error);
    this.#jobs.delete(job.id);
    this.#checkKeepAlive();
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
        this.#emit({
          type: "TaskFailed",
          task: job.id,
          name: job.name,
          node: node.index,
          elapsedMs,
          error: error.name,
          message: error.message,
        });
      } else {
        this.#emit({
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
    if (node && !this.#closed) this.#drain();
  }

  #cancel(job: Job, reason?: string): void {
    if (job.settled) return;
    if (job.node) {
      job.node.session?.cancel(job.id);
      job.node.session?.forget(job.id);
    }
    this.#settle(job, new TaskCancelledError(job.name, reason));
  }

  /** Builds and queues the jobs of a task or group; rejects synchronously-built failures. */
  #dispatch<R>(
    task: Dispatchable<R>,
    options: RunOptions,
  ): { jobs: Job[]; results: Promise<unknown>[] } {
    const signal = options.signal;
    const tasks = isGroup(task)
      ? (task as Group<R>).tasks
      : [task as Pending<unknown>];
    if (!isGroup(task) && !isPending(task)) {
      throw new TypeError(
        `Cannot run ${
          task === null ? "null" : typeof task
        }: expected a task (call a compute to ` +
          `build one) or a group from sky.gather() or sky.all()`,
      );
    }
    const pin = options.node;
    if (pin !== undefined) {
      const node = this.#nodes[pin];
      if (!Number.isInteger(pin) || !isStaying(node)) {
        const ranks = this.#nodes.flatMap((n, i) => isStaying(n) ? [i] : []);
        throw new RangeError(
          `Cannot run on node ${pin}: the pool's nodes are ${
            ranks.length === 0
              ? "none at the moment"
              : ranks.at(-1) === ranks.length - 1
              ? `0 to ${ranks.length - 1}`
              : ranks.join(", ")
          }${
            isGone(node)
              ? ` and node ${pin} was lost (${node!.reason})`
              : isRetiring(node)
              ? ` and node ${pin} is leaving the pool`
              : ""
          }`,
        );
      }
    }
    const jobs = tasks.map((t) => this.#makeJob(t, pin));
    const results = jobs.map((job) => this.#enqueue(job));
    if (signal) {
      const abort = () => jobs.forEach((job) => this.#cancel(job, "aborted"));
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
    }
    return { jobs, results };
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
    const promise = this.#run(task, options);
    return Object.assign(promise, {
      [Symbol.asyncIterator]: () => iterateResult(promise),
    }) as unknown as RunResult<R>;
  }

  async #run<R>(task: Dispatchable<R>, options: RunOptions): Promise<R> {
    const { jobs, results } = this.#dispatch(task, options);
    if (!isGroup(task)) return await results[0] as R;
    try {
      return await Promise.all(results) as R;
    } catch (error) {
      for (const job of jobs) {
        this.#cancel(job, "cancelled because another task of its group failed");
      }
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
      isAdmitted(n) && n.session !== undefined
    );
    if (this.#closed) throw new PoolClosedError();
    const hopeless = nodes.length === 0 ? this.#hopeless() : undefined;
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
    const jobs = nodes.map((node, k) => this.#makeJob(tasks[k], node.index));
    const results = jobs.map((job) => this.#enqueue(job));
    const abort = () => jobs.forEach((job) => this.#cancel(job, "aborted"));
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      return await Promise.all(results) as R[];
    } catch (error) {
      abort();
      throw error;
    } finally {
      options.signal?.removeEventListener("abort", abort);
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
      for (const job of jobs) {
        this.#cancel(job, "cancelled: the stream was left early or failed");
      }
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
        const job = this.#makeJob(
          compute(item) as Pending<unknown>,
          options.node,
        );
        return {
          result: this.#enqueue(job),
          cancel: (reason) => this.#cancel(job, reason),
        };
      }, {
        // An elastic pool may grow: enough tasks are in flight to make it.
        window: Math.max(
          2,
          Math.max(this.size, this.#scaler.scaling.max) * this.#capacity() * 2,
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
    if (!this.#closing) {
      const release = this.#hold();
      this.#closed = true;
      this.#closing = shutdown({
        poolId: this.id,
        startedAt: this.#startedAt,
        stopTimers: () => {
          this.#starving?.();
          this.#scaler.stop();
          for (const node of this.#nodes) node?.health?.stop();
          this.#heartbeat?.stop();
          this.#ttl?.();
        },
        failTasks: (error) => {
          for (const job of [...this.#jobs.values()]) this.#settle(job, error);
          this.#queue = [];
          this.#head = 0;
        },
        nodes: this.#nodes,
        hosts: this.#bringUp.hosts,
        inflight: this.#inflight,
        provisioner: this.#provisioner,
        emit: (event) => this.#emit(event),
        endEvents: () => {
          this.#console.close();
          for (const subscriber of this.#subscribers) subscriber(null);
          this.#subscribers.clear();
          untrack(this);
        },
      }).finally(release);
    }
    return this.#closing;
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

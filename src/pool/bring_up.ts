/**
 * Bringing a launched machine up to a ready worker: wait for it to run,
 * connect, ship the code (copied into a local node's directory, or by the
 * bootstrap script on a remote one), start the worker and do its handshake,
 * then admit it by its health check. Also where the code is built once per
 * pool, and how a worker is launched.
 *
 * @module
 */
import {
  buildBundle,
  bundlePath,
  codeKey,
  type IncludedFile,
  includedFiles,
} from "../bootstrap/bundle.ts";
import { bootstrap, quickStart } from "../bootstrap/bootstrap.ts";
import type { BootstrapPlan } from "../bootstrap/plan.ts";
import { type NodeBundle, nodeCode } from "../bootstrap/stage.ts";
import { librarySource, WORKER_MAIN, workerArgv } from "../bootstrap/worker.ts";
import { computeModules } from "../compute.ts";
import {
  ConfigError,
  NodeLostError,
  PoolClosedError,
  ProvisioningError,
} from "../errors.ts";
import type { BootstrapPhaseName, EventInit } from "../events.ts";
import { Image, type ResolvedImage } from "../image.ts";
import type { InstanceInfo } from "../instance.ts";
import { logger } from "../log.ts";
import type { Instance } from "../provider.ts";
import type { Channel, Host } from "../transport/host.ts";
import { workerDeadManSettings } from "./deadman.ts";
import { HealthMonitor } from "./health.ts";
import type { Job } from "./job.ts";
import type { CollectionService } from "../collections/service.ts";
import { NodeSession } from "./node.ts";
import { type PoolNode, transition, type WorkerLaunch } from "./node_state.ts";
import type { ResolvedOptions } from "./options.ts";
import type { PoolHooks, Provisioner } from "./provisioner.ts";

const log = logger("pool");

/** What a {@linkcode BringUp} needs from the pool. */
export interface BringUpHooks extends PoolHooks {
  /** The pool's id (`instanceInfo().jobId`). */
  poolId: string;
  /** Holds the lowest free rank (`freeing` counting as free) for a machine joining. */
  reserve(address: string, freeing?: number): number;
  /** A joining rank learnt its machine's private address. */
  addressed(index: number, address: string): void;
  /** A rank is no longer joining (its node is in, or failed). */
  unreserve(index: number): void;
  /** Keeps a promise in view until it settles, so that closing waits for it. */
  track<T>(promise: Promise<T>): Promise<T>;
  /** The cluster as tasks see it, for the node's `instanceInfo()`. */
  clusterView(): Pick<InstanceInfo, "totalNodes" | "peers" | "headAddr">;
  /** Sends queued work to nodes with free slots. */
  drain(): void;
  /** Runs the health check once on a node. */
  probe(node: PoolNode): Promise<unknown>;
  /** Settles a task with an error. */
  settle(job: Job, error: Error): void;
  /** Puts tasks back at the head of the shared queue. */
  requeue(jobs: Job[]): void;
  /** A node's worker stopped answering. */
  lost(node: PoolNode, session: NodeSession, reason: string): void;
  /** Serves the collection calls of the nodes' tasks. */
  collections?: CollectionService;
}

/**
 * Turns launched machines into ready nodes, with the pool's code.
 *
 * @example
 * ```ts ignore
 * const bringUp = new BringUp(options, provisioner, hooks);
 * await bringUp.prepareCode();
 * const rank = await bringUp.join(instance);
 * ```
 */
export class BringUp {
  #options: ResolvedOptions;
  #provisioner: Provisioner;
  #hooks: BringUpHooks;
  #startedAt = Date.now();
  /** The code as the nodes run it (see `nodeCode`). */
  #bundle!: NodeBundle;
  /** The image's `includes`, found at start. */
  #includes: IncludedFile[] = [];
  #modules = new Map<string, string>();
  #plan: Promise<BootstrapPlan> | undefined;
  /** Every connection opened to a machine, also those not yet a node. */
  readonly hosts: Set<Host> = new Set();

  /**
   * @param options The pool's resolved options.
   * @param provisioner Where the machines come from.
   * @param hooks What the bring-up tells the pool, and asks it.
   */
  constructor(
    options: ResolvedOptions,
    provisioner: Provisioner,
    hooks: BringUpHooks,
  ) {
    this.#options = options;
    this.#provisioner = provisioner;
    this.#hooks = hooks;
    hooks.collections?.attach({
      providers: () => [
        provisioner.provider,
        ...(options.specs ?? []).map((s) => s.provider),
      ],
      headAddress: () => hooks.clusterView().headAddr,
    });
  }

  /**
   * Builds the code the nodes run: the local module graph of the modules
   * that define computes, and of the main module.
   *
   * @throws When an include is missing: the same error on every provider,
   *   before anything is launched.
   */
  async prepareCode(): Promise<void> {
    const image = this.#options.image ?? Image();
    const roots = [...new Set([...computeModules(), Deno.mainModule])]
      .filter((m) => m.startsWith("file:"));
    const code = await buildBundle(roots);
    this.#includes = await includedFiles(
      code,
      image.includes,
      image.excludes,
    );
    this.#bundle = await nodeCode(
      code,
      await librarySource(this.#workerBackendModules()),
      image.imports,
    );
    log.debug("Bundle {hash}: {count} files from {root}", {
      hash: this.#bundle.hash,
      count: this.#bundle.files.length,
      root: this.#bundle.root,
    });
  }

  /**
   * Shipped path of each module that defines a compute, by client URL.
   *
   * @returns The map, filled with the modules known so far.
   */
  modules(): Map<string, string> {
    for (const module of computeModules()) {
      if (this.#modules.has(module)) continue;
      const path = bundlePath(this.#bundle, module);
      if (path) this.#modules.set(module, path);
    }
    return this.#modules;
  }

  /**
   * Brings a launched machine into the pool at the lowest free rank
   * (counting `freeing`, the rank of a node it replaces, as free) and says
   * which. When it fails, its machine is released and its rank freed.
   *
   * @param instance The machine, as launched.
   * @param freeing The rank of the node it replaces, if any.
   * @returns Its rank.
   */
  async join(instance: Instance, freeing?: number): Promise<number> {
    const hooks = this.#hooks;
    const index = hooks.reserve(instance.privateAddress ?? "", freeing);
    this.#provisioner.spend.place(instance.id, index);
    hooks.emit({
      type: "InstanceLaunched",
      node: index,
      instance: instance.id,
      ...this.#provisioner.spend.priceOf(instance.id),
    });
    hooks.announce();
    try {
      await hooks.track(this.#bringUp(index, instance));
    } catch (error) {
      log.warn("Node {index} failed to start: {error}", { index, error });
      await this.#provisioner.release([instance.id]);
      throw error;
    } finally {
      hooks.unreserve(index);
      hooks.announce();
    }
    return index;
  }

  /**
   * Brings a machine up as node `index`: waits for it to run, connects,
   * ships the code, starts the worker and, with a health check, waits for
   * its first success. On failure it leaves the node's rank as it found it.
   *
   * @param index The node's rank.
   * @param launched The machine as launched.
   */
  async #bringUp(index: number, launched: Instance): Promise<void> {
    const provisioner = this.#provisioner;
    const emit = (e: EventInit) => this.#hooks.emit(e);
    const instance = await provisioner.waitRunning(launched);
    // A machine may get its private address only once it runs.
    if (instance.privateAddress) {
      this.#hooks.addressed(index, instance.privateAddress);
    }
    const endpoint = instance.endpoint;
    if (!endpoint) {
      throw new ProvisioningError(`Instance ${instance.id} has no endpoint`);
    }
    emit({
      type: "InstanceRunning",
      node: index,
      instance: instance.id,
      address: endpoint.kind === "local"
        ? endpoint.dir
        : `${endpoint.host}:${endpoint.port}`,
    });
    provisioner.checkOpen();
    const host = await provisioner.connect(endpoint, index);
    this.hosts.add(host);
    if (this.#hooks.closed()) {
      await host.close().catch(() => {});
      provisioner.checkOpen();
    }
    const bootStart = Date.now();
    emit({ type: "InstanceProvisioned", node: index, instance: instance.id });
    const view = this.#hooks.clusterView();
    const accelerator = provisioner.accelerator;
    const info: Omit<InstanceInfo, "hostname"> = {
      node: index,
      ...view,
      isHead: index === 0,
      headPort: 29500,
      accelerators: accelerator
        ? [{
          name: accelerator.name,
          count: accelerator.count,
          memory: accelerator.memory,
        }]
        : [],
      jobId: this.#hooks.poolId,
    };
    let launch: WorkerLaunch;
    /** The worker, when the quick look at the host started it. */
    let started: { channel: Channel; at: number } | undefined;
    try {
      if (endpoint.kind === "local") {
        launch = await this.#shipLocally(index, host, endpoint.dir);
      } else {
        const remote = await this.#bootstrapRemote(index, host, info);
        launch = remote.launch;
        started = remote.started;
      }
      provisioner.checkOpen();
    } catch (error) {
      started?.channel.kill();
      await host.close().catch(() => {});
      throw error;
    }
    launch.env.SKYWARD_INSTANCE = JSON.stringify(info);
    emit({
      type: "InstanceBootstrapped",
      node: index,
      instance: instance.id,
      elapsedMs: Date.now() - bootStart,
    });
    const node: PoolNode = {
      index,
      instance,
      host,
      launch,
      state: "starting",
      running: new Set(),
      pinned: [],
      gapMs: Infinity,
      lastDoneAt: 0,
      idleSince: performance.now(),
      restarts: 0,
      view: JSON.stringify(view),
    };
    const nodes = this.#hooks.nodes();
    const before = nodes[index];
    nodes[index] = node;
    try {
      await this.startWorker(node, false, started);
      if (this.#hooks.closed()) throw new PoolClosedError();
      if (node.health) await this.#admit(node, node.health);
    } catch (error) {
      node.health?.stop();
      if (node.state !== "gone") {
        transition(
          node,
          "gone",
          error instanceof Error ? error.message : String(error),
        );
      }
      node.session?.kill();
      await host.close().catch(() => {});
      if (nodes[index] === node) nodes[index] = before;
      this.#evict(node, new NodeLostError(index, node.reason!));
      throw error;
    }
    if (this.#hooks.closed()) {
      node.health?.stop();
      node.session?.kill();
      await host.close().catch(() => {});
    }
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
      if (job.probe || job.pin !== undefined) this.#hooks.settle(job, lost);
      else this.#hooks.requeue([job]);
    }
    for (const job of node.pinned.splice(0)) this.#hooks.settle(job, lost);
    this.#hooks.drain();
  }

  /** Waits for a node's first successful health check, then admits it. */
  async #admit(node: PoolNode, health: HealthMonitor): Promise<void> {
    await health.admit();
    // It may have left meanwhile, or be restarting its worker.
    if (node.state !== "admitting") return;
    transition(node, "ready");
    health.start();
    this.#hooks.emit({
      type: "NodeReady",
      node: node.index,
      instance: node.instance.id,
      pid: node.hello!.pid,
      hostname: node.hello!.hostname,
      ...this.#provisioner.spend.priceOf(node.instance.id),
    });
    this.#hooks.drain();
  }

  /** The health monitor of a node, when the pool has a health check. */
  #monitor(node: PoolNode): HealthMonitor | undefined {
    const health = this.#options.healthCheck;
    if (!health) return undefined;
    return new HealthMonitor(health, {
      probe: () => this.#hooks.probe(node),
      busy: () => node.running.size >= this.#options.worker.concurrency,
      failed: (failures, error) =>
        this.#hooks.emit({
          type: "HealthCheckFailed",
          node: node.index,
          failures,
          message: error.message,
        }),
      unhealthy: (reason) => {
        const nodes = this.#hooks.nodes();
        if (nodes[node.index] !== node || node.state !== "ready") return;
        node.unhealthy = reason;
        node.session?.kill();
      },
    });
  }

  /**
   * The module a collections backend the workers open themselves comes
   * from (e.g. Redis's), shipped with the library so that remote nodes
   * have it and its npm packages.
   */
  #workerBackendModules(): string[] {
    const spec = this.#hooks.collections?.option.worker?.({
      poolId: this.#hooks.poolId,
    });
    return spec ? [new URL(spec.module, WORKER_MAIN).href] : [];
  }

  /** The image, with the Debian packages the collections backend needs of the nodes (e.g. `redis-server`). */
  #imageWithCollectionsApt(): ResolvedImage {
    const image = this.#options.image ?? Image();
    const apt = this.#hooks.collections?.option.needs?.apt ?? [];
    const missing = apt.filter((p) => !image.apt.includes(p));
    return missing.length
      ? { ...image, apt: [...image.apt, ...missing] }
      : image;
  }

  /** Copies the code into a local node's directory (once per hash). */
  async #shipLocally(
    index: number,
    host: Host,
    dir: string,
  ): Promise<WorkerLaunch> {
    const collections = this.#hooks.collections?.option;
    if (collections?.needs?.apt?.length) {
      throw new ConfigError(
        `Cannot start the collections (${collections.kind}) on ${this.#provisioner.provider.name} nodes: ` +
          `they need ${
            collections.needs.apt.join(", ")
          } installed by the bootstrap, and these nodes are processes on this machine. ` +
          "Run the server yourself and give its URL, or use a provider with machines of its own",
      );
    }
    if (this.#options.image?.apt.length) {
      throw new ConfigError(
        `Cannot install apt packages on ${this.#provisioner.provider.name} nodes: they are processes on this machine. ` +
          `Install ${
            this.#options.image.apt.join(", ")
          } on this machine yourself and leave 'apt' out of the image, or use a provider with machines of its own`,
      );
    }
    const bundle = this.#bundle;
    const includes = this.#includes;
    // Named by the code's hash and the includes' paths, sizes and times.
    const key = await codeKey(bundle, includes);
    const codeDir = `${dir}/code/${key}`;
    const started = Date.now();
    this.#phase(index, "code", "started", started);
    const present = await host.exists(codeDir);
    if (!present) {
      await host.writeTree(codeDir, [
        ...bundle.files,
        ...await Promise.all(includes.map(async (f) => ({
          path: f.path,
          data: await Deno.readFile(f.file),
        }))),
        {
          path: ".skyward-hash",
          data: new TextEncoder().encode(bundle.hash),
        },
      ]);
    }
    this.#phase(index, "code", present ? "skipped" : "completed", started);
    // The node runs from the client's Deno cache, which the code's
    // dependencies were resolved into, with the code's lockfile frozen: a
    // task cannot fetch a package or rewrite the lockfile (see src/bootstrap/stage.ts).
    return {
      argv: workerArgv(
        Deno.execPath(),
        `${codeDir}/${bundle.node.config}`,
        WORKER_MAIN.protocol === "file:"
          ? decodeURIComponent(WORKER_MAIN.pathname)
          : WORKER_MAIN.href,
        ["--cached-only", "--frozen"],
      ),
      cwd: bundle.project ? `${codeDir}/${bundle.project}` : codeDir,
      env: {
        ...this.#options.image?.env,
        SKYWARD_CODE_DIR: codeDir,
        ...(bundle.node.importHosts.length
          ? { SKYWARD_IMPORT_HOSTS: bundle.node.importHosts.join(",") }
          : {}),
      },
    };
  }

  /**
   * Readies a remote node: on a host that holds everything already, one
   * command looks and starts the worker (the bootstrap's phases then all
   * `skipped`, as its own quick look reports them); else the bootstrap
   * script runs, and the worker is started after it.
   */
  async #bootstrapRemote(
    index: number,
    host: Host,
    info: Omit<InstanceInfo, "hostname">,
  ): Promise<
    { launch: WorkerLaunch; started?: { channel: Channel; at: number } }
  > {
    // One plan for every node: the bootstrap caches its preparation per plan.
    this.#plan ??= librarySource(this.#workerBackendModules()).then((lib) => ({
      image: this.#imageWithCollectionsApt(),
      denoVersion: Deno.version.deno,
      code: this.#bundle,
      lib,
    }));
    const plan = await this.#plan;
    const quick = await quickStart(host, plan, {
      SKYWARD_INSTANCE: JSON.stringify(info),
      SKYWARD_DEADMAN: this.#deadMan(),
    });
    if (quick) {
      const at = Date.now();
      for (const phase of ["env", "apt", "deno", "code", "deps"] as const) {
        this.#phase(index, phase, "started", at);
        this.#phase(index, phase, "skipped", at);
      }
      return {
        launch: { argv: quick.argv, cwd: "", env: quick.env },
        started: { channel: quick.channel, at },
      };
    }
    const result = await bootstrap(
      host,
      plan,
      (e) =>
        this.#hooks.emit({
          type: "BootstrapPhase",
          node: index,
          phase: e.phase,
          status: e.status,
          elapsedMs: e.elapsedMs,
          ...(e.output === undefined ? {} : { output: e.output }),
        }),
    );
    return {
      launch: {
        argv: workerArgv(
          result.denoPath,
          result.configPath,
          result.workerEntry,
          ["--cached-only", "--frozen"],
        ),
        cwd: result.projectDir,
        env: { ...result.env },
      },
    };
  }

  /** The worker's `SKYWARD_DEADMAN`. */
  #deadMan(): string {
    return workerDeadManSettings(
      this.#options.deadManSwitch,
      this.#provisioner.provider.powerOffCommand,
      this.#startedAt,
    );
  }

  #phase(
    node: number,
    phase: BootstrapPhaseName,
    status: "started" | "completed" | "skipped" | "failed",
    since: number,
  ): void {
    this.#hooks.emit({
      type: "BootstrapPhase",
      node,
      phase,
      status,
      elapsedMs: status === "started" ? 0 : Date.now() - since,
    });
  }

  /**
   * Starts (or restarts) a node's worker and does the handshake. A node
   * starting the first time, or lost before it was admitted, then waits for
   * its health check (`"admitting"`); any other is ready.
   *
   * @param node The node, `"starting"` or `"restarting"`.
   * @param admitted Whether it passed its health check before (a restart).
   * @param running The worker, when it was started already (by the quick
   *   look at its host), and when.
   */
  async startWorker(
    node: PoolNode,
    admitted = false,
    running?: { channel: Channel; at: number },
  ): Promise<void> {
    const started = running?.at ?? Date.now();
    this.#phase(node.index, "worker", "started", started);
    if (running && this.#hooks.closed()) running.channel.kill();
    this.#provisioner.checkOpen();
    const channel = running?.channel ?? await node.host.exec(node.launch.argv, {
      ...(node.launch.cwd ? { cwd: node.launch.cwd } : {}),
      env: { ...node.launch.env, SKYWARD_DEADMAN: this.#deadMan() },
    });
    // An idle worker does not keep the program alive: the pool does, while
    // it works (see #checkKeepAlive).
    channel.unref?.();
    if (this.#hooks.closed()) {
      channel.kill();
      await channel.exited;
      this.#provisioner.checkOpen();
    }
    const session = new NodeSession(node.index, channel, {
      log: (stream, line, task) =>
        this.#hooks.emit({
          type: "Log",
          node: node.index,
          task,
          stream,
          line,
        }),
      lost: (reason) => this.#hooks.lost(node, session, reason),
      collections: this.#hooks.collections,
    });
    session.rootUrl = this.#bundle.rootUrl;
    node.session = session;
    const hello = await session.handshake({
      code: this.#bundle.hash,
      deno: Deno.version.deno,
      modules: [...this.modules().values()],
      concurrency: this.#options.worker.concurrency,
    }).catch((error) => {
      this.#phase(node.index, "worker", "failed", started);
      session.kill();
      throw error;
    });
    this.#phase(node.index, "worker", "completed", started);
    node.hello = { pid: hello.pid, hostname: hello.hostname };
    if (node.state === "starting" || node.state === "restarting") {
      if (node.state === "starting") node.health = this.#monitor(node);
      transition(node, node.health && !admitted ? "admitting" : "ready");
    }
    // Given up while its worker started: nothing to announce.
    if (node.state === "gone") return;
    // Lost between the handshake and now, when its loss was not yet the
    // node's to report: reported now.
    if (session.lostReason !== undefined) {
      return this.#hooks.lost(node, session, session.lostReason);
    }
    // A worker started with an older view of the cluster learns the current one.
    node.view = "";
    this.#hooks.announce();
    // A node waiting for its first health check is ready once it passes.
    if (node.state === "ready") {
      this.#hooks.emit({
        type: "NodeReady",
        node: node.index,
        instance: node.instance.id,
        pid: hello.pid,
        hostname: hello.hostname,
        ...this.#provisioner.spend.priceOf(node.instance.id),
      });
      node.health?.start();
    }
    this.#hooks.drain();
  }
}

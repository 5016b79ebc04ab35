/**
 * Fault injection, as test equipment: a {@linkcode Provider} wrapper that
 * fails, delays or loses the provider's calls, takes machines back (as a spot
 * interruption does), and puts each SSH machine behind a TCP link the test
 * can slow down, stall or cut; and a {@linkcode NodeKiller} that kills a
 * node's worker at a moment or after a number of completed tasks. Library
 * code never imports this.
 *
 * @module
 */
import type { PoolEvent } from "../src/events.ts";
import type {
  ClusterSpec,
  Instance,
  Offer,
  Provider,
} from "../src/provider.ts";

/** A provider call faults can be injected into. */
export type ProviderCall =
  | "offers"
  | "prepare"
  | "provision"
  | "getInstance"
  | "terminate"
  | "teardown";

/**
 * Where a call fails: `"before"` it does anything, or `"after"` it did its
 * work (the reply was lost: e.g. machines launched that the caller never
 * hears of).
 */
export type FailurePoint = "before" | "after";

/** What to inject. */
export interface Faults {
  /** The first `n` calls to `provision` fail before launching anything. */
  failProvision?: number;
  /** Decides for each call whether (and where) it fails. */
  fail?: (call: ProviderCall, count: number) => FailurePoint | undefined;
  /** Delay added to each call, in ms. */
  delay?: (call: ProviderCall) => number;
  /** Reach SSH machines through a {@linkcode FaultyLink} each. */
  links?: boolean;
  /** The machines' power-off command. */
  powerOffCommand?: string;
}

/** The error an injected failure throws. */
export class InjectedFault extends Error {
  constructor(call: ProviderCall, point: FailurePoint) {
    super(`injected fault: ${call} failed (${point})`);
    this.name = "InjectedFault";
  }
}

/**
 * A TCP link between the client and one machine's SSH port that a test can
 * slow down, stall (bytes stop flowing, the connection stays open: a
 * partition) or cut.
 */
export class FaultyLink {
  /** The port on 127.0.0.1 the client connects to. */
  readonly port: number;
  /** Delay added to every chunk, each way, in ms. */
  delayMs = 0;
  #listener: Deno.TcpListener;
  #target: { hostname: string; port: number };
  #pairs = new Set<[Deno.Conn, Deno.Conn]>();
  #stalled: Promise<void> | undefined;
  #resume: (() => void) | undefined;

  /** @param target Where the bytes go. */
  constructor(target: { hostname: string; port: number }) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#accept();
  }

  /** Stops forwarding bytes, keeping the connections open. */
  stall(): void {
    this.#stalled ??= new Promise((r) => this.#resume = r);
  }

  /** Forwards bytes again. */
  resume(): void {
    this.#resume?.();
    this.#stalled = undefined;
  }

  /** Cuts every connection now (new ones are still accepted). */
  drop(): void {
    for (const [a, b] of this.#pairs) {
      for (const conn of [a, b]) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
    }
    this.#pairs.clear();
  }

  /** Cuts everything and stops listening. */
  close(): void {
    this.resume();
    this.drop();
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        Deno.connect(this.#target).then((server) => {
          const pair: [Deno.Conn, Deno.Conn] = [client, server];
          this.#pairs.add(pair);
          const end = () => {
            this.#pairs.delete(pair);
            for (const conn of pair) {
              try {
                conn.close();
              } catch {
                // Closed already.
              }
            }
          };
          Promise.all([this.#pipe(client, server), this.#pipe(server, client)])
            .finally(end);
        }, () => client.close());
      }
    } catch {
      // The listener was closed.
    }
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) {
          // Half-close: the other side sees the end of this direction.
          await to.closeWrite().catch(() => {});
          return;
        }
        const chunk = buffer.slice(0, n);
        if (this.delayMs > 0) {
          await new Promise((r) => setTimeout(r, this.delayMs));
        }
        await this.#stalled;
        for (let at = 0; at < chunk.length;) {
          at += await to.write(chunk.subarray(at));
        }
      }
    } catch {
      // One side is gone: the pair is closed by the caller.
    }
  }
}

/** The key `known_hosts` holds for a host, as `type base64`. */
function knownKey(
  path: string | undefined,
  host: string,
  port: number,
): string | undefined {
  if (!path) return undefined;
  const names = [host, `[${host}]:${port}`];
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    const [hosts, type, key] = line.trim().split(/\s+/);
    if (key && hosts.split(",").some((h) => names.includes(h))) {
      return `${type} ${key}`;
    }
  }
  return undefined;
}

/**
 * Wraps a provider with faults. Every call goes to the real provider unless
 * a fault says otherwise; the wrapper records the clusters it saw, so that
 * leak checks can look for exactly their resources.
 */
export class FaultyProvider<C = unknown> implements Provider<C> {
  readonly name: string;
  readonly powerOffCommand?: string;
  /** Cluster ids of every `prepare` call, and the records returned. */
  readonly clusters: Map<string, C | undefined> = new Map();
  /** Calls made so far, by kind. */
  readonly calls: Record<ProviderCall, number> = {
    offers: 0,
    prepare: 0,
    provision: 0,
    getInstance: 0,
    terminate: 0,
    teardown: 0,
  };
  /** The link of each SSH machine, by instance id (with `links`). */
  readonly links: Map<string, FaultyLink> = new Map();
  #inner: Provider<C>;
  #faults: Faults;
  #preempted = new Set<string>();

  /**
   * @param inner The real provider.
   * @param faults What to inject.
   */
  /** The inner provider's bound, forwarded. */
  get nodeLimit(): Provider<C>["nodeLimit"] {
    return this.#inner.nodeLimit;
  }

  constructor(inner: Provider<C>, faults: Faults = {}) {
    this.#inner = inner;
    this.#faults = faults;
    this.name = inner.name;
    this.powerOffCommand = faults.powerOffCommand ?? inner.powerOffCommand;
  }

  async #call<T>(call: ProviderCall, run: () => Promise<T>): Promise<T> {
    const count = ++this.calls[call];
    const delay = this.#faults.delay?.(call) ?? 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    let point = this.#faults.fail?.(call, count);
    if (call === "provision" && count <= (this.#faults.failProvision ?? 0)) {
      point = "before";
    }
    if (point === "before") throw new InjectedFault(call, point);
    const result = await run();
    if (point === "after") throw new InjectedFault(call, point);
    return result;
  }

  /**
   * Takes a machine back, as a spot interruption does: from now on the
   * provider reports it terminated, and its link (if any) is cut.
   */
  preempt(id: string): void {
    this.#preempted.add(id);
    this.links.get(id)?.close();
  }

  #wrap(instance: Instance): Instance {
    if (this.#preempted.has(instance.id)) {
      return { ...instance, status: "terminated", endpoint: undefined };
    }
    const endpoint = instance.endpoint;
    if (!this.#faults.links || endpoint?.kind !== "ssh") return instance;
    let link = this.links.get(instance.id);
    if (!link) {
      link = new FaultyLink({ hostname: endpoint.host, port: endpoint.port });
      this.links.set(instance.id, link);
    }
    // The machine's key stays pinned: the link's address is not in known_hosts.
    const hostKey = endpoint.hostKey ??
      knownKey(endpoint.knownHostsPath, endpoint.host, endpoint.port);
    return {
      ...instance,
      endpoint: {
        ...endpoint,
        host: "127.0.0.1",
        port: link.port,
        hostKey,
        knownHostsPath: undefined,
      },
    };
  }

  offers(spec: ClusterSpec): Promise<Offer[]> {
    return this.#call("offers", () => this.#inner.offers(spec));
  }

  prepare(spec: ClusterSpec, offer: Offer): Promise<C> {
    this.clusters.set(spec.clusterId, undefined);
    return this.#call("prepare", async () => {
      const cluster = await this.#inner.prepare(spec, offer);
      this.clusters.set(spec.clusterId, cluster);
      return cluster;
    });
  }

  provision(cluster: C, count: number): Promise<Instance[]> {
    return this.#call(
      "provision",
      async () =>
        (await this.#inner.provision(cluster, count)).map((i) => this.#wrap(i)),
    );
  }

  getInstance(cluster: C, id: string): Promise<Instance | undefined> {
    return this.#call("getInstance", async () => {
      const instance = await this.#inner.getInstance(cluster, id);
      return instance && this.#wrap(instance);
    });
  }

  terminate(cluster: C, ids: string[]): Promise<void> {
    return this.#call("terminate", async () => {
      await this.#inner.terminate(cluster, ids);
      for (const id of ids) this.links.get(id)?.close();
    });
  }

  teardown(cluster: C): Promise<void> {
    return this.#call("teardown", async () => {
      await this.#inner.teardown(cluster);
      for (const link of this.links.values()) link.close();
    });
  }

  sweepHint(clusterId: string): string {
    return this.#inner.sweepHint?.(clusterId) ?? `nothing to sweep`;
  }
}

/**
 * Kills nodes' workers at chosen moments. Pass its `onEvent` to the pool: it
 * learns each node's worker pid from `NodeReady` and counts `TaskCompleted`.
 */
export class NodeKiller {
  /** The current worker pid of each node. */
  readonly pids: number[] = [];
  /** Instance id of each node. */
  readonly instances: string[] = [];
  /** Tasks completed so far (events, not results). */
  completed = 0;
  #plans: { node: number; after: number; kill: (node: number) => void }[] = [];

  /** Feeds the killer the pool's events. */
  onEvent = (event: PoolEvent): void => {
    if (event.type === "NodeReady") {
      this.pids[event.node] = event.pid;
      this.instances[event.node] = event.instance;
    } else if (event.type === "TaskCompleted") {
      this.completed++;
      for (const plan of this.#plans.splice(0)) {
        if (this.completed >= plan.after) plan.kill(plan.node);
        else this.#plans.push(plan);
      }
    }
  };

  /** SIGKILLs a node's worker process now. */
  killWorker(node: number): void {
    try {
      Deno.kill(this.pids[node], "SIGKILL");
    } catch {
      // Gone already.
    }
  }

  /**
   * Does `kill(node)` (by default: SIGKILL its worker) once `n` tasks have
   * completed.
   */
  afterTasks(
    node: number,
    n: number,
    kill: (node: number) => void = (k) => this.killWorker(k),
  ): void {
    this.#plans.push({ node, after: n, kill });
  }

  /** Does `kill(node)` (by default: SIGKILL its worker) `ms` from now. */
  at(
    node: number,
    ms: number,
    kill: (node: number) => void = (k) => this.killWorker(k),
  ): void {
    setTimeout(() => kill(node), ms);
  }
}

/**
 * The provisioning sequence, apart from the pool: offer failover (prepare
 * and launch the best offer, else release it and try the next), launching
 * machines, waiting for them to run (with backoff), connecting to them, and
 * releasing them — on every failure path, and all of them at the end.
 *
 * @module
 */
import { type Accelerator, acceleratorLabel } from "../accelerators.ts";
import {
  BudgetExceededError,
  ConfigError,
  NoOffersError,
  PoolClosedError,
  ProvisioningError,
} from "../errors.ts";
import type { EventInit } from "../events.ts";
import { logger } from "../log.ts";
import type { Endpoint, Instance, Provider } from "../provider.ts";
import { backoff, retry, type RetryOptions } from "../_retry.ts";
import {
  type Candidate,
  rankOffers,
  type Selection,
  type SpecRequest,
} from "../spec.ts";
import { after, sleep } from "../_timers.ts";
import { type Host, sshTransport } from "../transport/host.ts";
import { LocalHost } from "../transport/local.ts";
import type { PoolNode } from "./node_state.ts";
import { BudgetGuard, DEFAULT_COST_INTERVAL } from "./budget.ts";
import { machinePrice, Spend } from "./spend.ts";

const log = logger("pool");

/**
 * How a release step (terminate, teardown) is tried again after a failure:
 * a cloud API's passing error must not leave machines running.
 */
const RELEASE: RetryOptions = { maxAttempts: 3, minDelay: 250, jitter: 0 };

/** How many offers a pool tries before it gives up starting. */
const MAX_OFFER_ATTEMPTS = 8;

/** How a launched machine is polled until it runs. */
const RUNNING_POLL = { minDelay: 250, maxDelay: 5_000, jitter: 0 };

/**
 * What every collaborator of the pool (provisioner, bring-up, recovery,
 * scaler) tells it and asks it; each adds what only it needs.
 */
export interface PoolHooks {
  /** Reports an event. */
  emit(event: EventInit): void;
  /** Whether the pool is closing: nothing new is started then. */
  closed(): boolean;
  /** The nodes by rank (a collaborator may place or free one). */
  nodes(): (PoolNode | undefined)[];
  /** Sends the cluster view to the workers whose view is older. */
  announce(): void;
}

/** The pool's steps in {@linkcode Provisioner.provisionCluster}. */
export interface StartSteps {
  /** Builds the code the nodes run (while the offers are ranked). */
  prepareCode(): Promise<void>;
  /** Brings a launched machine in as a node. */
  join(instance: Instance): Promise<unknown>;
}

/** What a {@linkcode Provisioner} needs from the pool. */
export interface ProvisionerHooks extends Pick<PoolHooks, "emit" | "closed"> {
  /** Keeps a promise in view until it settles, so that closing waits for it. */
  track<T>(promise: Promise<T>): Promise<T>;
  /** The pool's ledger of what its machines cost. @default a ledger of its own */
  spend?: Spend;
  /** The pool's budget guard. @default one that refuses nothing */
  guard?: BudgetGuard;
}

/**
 * Owns the pool's cluster at its provider: which provider and offer were
 * chosen, the machines launched and not yet released.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { Provisioner } from "./provisioner.ts";
 *
 * const provisioner = new Provisioner(sky.Local(), {
 *   emit: () => {},
 *   closed: () => false,
 *   track: (p) => p,
 * });
 * console.log(provisioner.provider.name); // local
 * ```
 */
export class Provisioner {
  /** The provider the machines come from (the chosen offer's). */
  provider: Provider<any>;
  /** The accelerators of the chosen spec. */
  accelerator: Accelerator | undefined;
  /** The machines launched and not released, by id. */
  readonly instances: Map<string, Instance> = new Map();
  /** What the machines cost: each is counted from its launch to its release. */
  readonly spend: Spend;
  /** Refuses launches that would pass the budget of the chosen spec. */
  readonly guard: BudgetGuard;
  /** The offer chosen, and the allocation its machines are launched with. */
  #chosen: Candidate | undefined;
  #cluster: unknown;
  #prepared = false;
  #hooks: ProvisionerHooks;
  /** Ends the waits while the pool starts: its deadline and the caller's signal. */
  #starting: AbortSignal | undefined;

  /**
   * @param provider The provider, until an offer is chosen.
   * @param hooks Events, whether the pool is closing, and what to track.
   */
  constructor(provider: Provider<any>, hooks: ProvisionerHooks) {
    this.provider = provider;
    this.#hooks = hooks;
    this.spend = hooks.spend ?? new Spend();
    this.guard = hooks.guard ?? new BudgetGuard({
      spend: this.spend,
      interval: DEFAULT_COST_INTERVAL,
      emit: hooks.emit,
      exceeded: () => {},
    });
  }

  /**
   * The price of each machine of the chosen offer, before the provider says
   * whether it launched spot or on-demand; `undefined` until an offer is
   * chosen, or when the offer has none.
   */
  get pricePerHour(): number | undefined {
    const chosen = this.#chosen;
    return chosen &&
      machinePrice(chosen.offer, chosen.price, {}).pricePerHour;
  }

  /** Whether a cluster was prepared at the provider (and is to be torn down). */
  get prepared(): boolean {
    return this.#prepared;
  }

  /**
   * Throws once the pool is closing, or the start was aborted: nothing new
   * is launched then.
   */
  checkOpen(): void {
    this.#starting?.throwIfAborted();
    if (this.#hooks.closed()) {
      throw new PoolClosedError("The pool was closed while it was starting");
    }
  }

  /**
   * The start's sequence: ranks the offers (while the code is built),
   * launches the best, and brings its machines in, resolving once `wanted`
   * of them are nodes (the others keep coming up). Rejects at once when the
   * caller's signal aborts, or the start outlasts its deadline.
   *
   * @param requests What to ask each provider for.
   * @param plan How to rank the offers, how many nodes must be ready, by
   *   when (`timeout`, in ms), and the caller's signal.
   * @param steps Builds the code; brings a machine in as a node.
   * @throws {ProvisioningError} Past the deadline, naming `provisionTimeout`.
   * @throws The signal's reason, when it aborts.
   */
  async provisionCluster(
    requests: SpecRequest[],
    plan: {
      selection: Selection;
      wanted: number;
      timeout: number;
      signal?: AbortSignal;
      /** Checks the ranked offers before any is prepared. */
      check?: (candidates: Candidate[]) => void;
    },
    steps: StartSteps,
  ): Promise<void> {
    plan.signal?.throwIfAborted();
    // The deadline runs on after(), which takes any length, where
    // AbortSignal.timeout fires at once past 2^31 ms.
    const deadline = new AbortController();
    const cancelDeadline = after(plan.timeout, () =>
      deadline.abort(
        new ProvisioningError(
          `Cannot start pool: nodes were not ready within provisionTimeout (${plan.timeout} ms)`,
        ),
      ));
    const signal = this.#starting = plan.signal
      ? AbortSignal.any([plan.signal, deadline.signal])
      : deadline.signal;
    // Aborted: the start rejects at once; closing the pool then stops what
    // is under way and releases it.
    let stop = () => {};
    const aborted = new Promise<never>((_, reject) => {
      stop = () => reject(signal.reason);
      signal.addEventListener("abort", stop, { once: true });
    });
    try {
      await Promise.race([
        aborted,
        this.#provisionCluster(requests, plan, steps),
      ]);
    } finally {
      cancelDeadline();
      signal.removeEventListener("abort", stop);
      this.#starting = undefined;
    }
  }

  async #provisionCluster(
    requests: SpecRequest[],
    plan: {
      selection: Selection;
      wanted: number;
      check?: (candidates: Candidate[]) => void;
    },
    steps: StartSteps,
  ): Promise<void> {
    const { wanted } = plan;
    const [, candidates] = await Promise.all([
      steps.prepareCode(),
      rankOffers(requests, plan.selection),
    ]);
    plan.check?.(candidates);
    const instances = await this.launchBest(candidates, wanted);
    const min = Math.min(wanted, instances.length);
    let ready = 0;
    await new Promise<void>((resolve, reject) => {
      let failed = 0;
      if (min === 0) resolve();
      for (const instance of instances) {
        steps.join(instance).then(() => {
          if (++ready === min) resolve();
        }, (error) => {
          failed++;
          if (instances.length - failed < min) reject(error);
        });
      }
    });
  }

  /**
   * Prepares and launches the best candidate; when that fails, releases what
   * it made and tries the next. A `ConfigError` (credentials, a spec the
   * provider cannot meet) skips the rest of that provider's offers.
   *
   * @param candidates The offers, best first.
   * @param wanted How many machines must come up at least.
   * @returns The machines launched.
   */
  async launchBest(
    candidates: Candidate[],
    wanted: number,
  ): Promise<Instance[]> {
    const failures: { candidate: Candidate; error: unknown }[] = [];
    const refused = new Set<Provider<any>>();
    for (const candidate of candidates.slice(0, MAX_OFFER_ATTEMPTS)) {
      const { provider, spec, offer, nodes } = candidate;
      if (refused.has(provider) || this.#hooks.closed()) continue;
      this.#starting?.throwIfAborted();
      const min = Math.min(wanted, nodes);
      this.provider = provider;
      this.#chosen = candidate;
      try {
        this.checkOpen();
        // Within the budget, or not prepared at all.
        this.guard.use(candidate.budget, candidate.budgetOption);
        this.guard.admit(nodes, this.pricePerHour);
        await this.#hooks.track(
          provider.prepare(spec, offer).then((cluster) => {
            this.#cluster = cluster;
            this.#prepared = true;
          }),
        );
        this.#hooks.emit({
          type: "ClusterProvisioned",
          provider: provider.name,
          region: offer.region,
          nodes,
          ...(offer.accelerator
            ? { accelerator: acceleratorLabel(offer.accelerator) }
            : {}),
        });
        this.accelerator = spec.accelerator;
        // An elastic pool may start with no node, to wake on its first task.
        if (nodes === 0) return [];
        const instances = await this.launch(nodes);
        if (instances.length < min) {
          throw new ProvisioningError(
            `Cannot start pool: ${provider.name} launched ${instances.length} of ${min} node(s)`,
          );
        }
        return instances;
      } catch (error) {
        failures.push({ candidate, error });
        if (error instanceof ConfigError) refused.add(provider);
        if (candidates.length > 1 && !this.#starting?.aborted) {
          log.warn(
            "Offer {type} of {provider} failed, trying the next: {error}",
            { type: offer.instanceType, provider: provider.name, error },
          );
        }
        if (this.#prepared) {
          this.#prepared = false;
          this.spend.close(this.instances.keys());
          this.instances.clear();
          await provider.teardown(this.#cluster).catch((e) =>
            log.error("Teardown of a failed offer failed: {e}", { e })
          );
        }
      }
    }
    this.#starting?.throwIfAborted();
    if (this.#hooks.closed()) throw new PoolClosedError();
    if (failures.length === 1) throw failures[0].error;
    // Every offer dearer than the budget allows: the cheapest's refusal says so.
    if (failures.every(({ error }) => error instanceof BudgetExceededError)) {
      throw failures[0].error;
    }
    const noCapacity = failures.every(({ error }) =>
      error instanceof NoOffersError
    );
    const where = ({ candidate: c }: (typeof failures)[number]) =>
      `${c.provider.name} ${c.offer.instanceType}${
        c.offer.region ? ` (${c.offer.region})` : ""
      }`;
    const last = failures.at(-1)?.error;
    if (noCapacity) {
      throw new NoOffersError(
        `${(failures[0].error as Error).message} (no capacity for the ${
          failures.length - 1
        } next offer(s) either: ${failures.slice(1).map(where).join(", ")})`,
        { cause: last },
      );
    }
    throw new ProvisioningError(
      `Cannot start pool: none of ${failures.length} offer(s) could be launched: ${
        failures.map((f) =>
          `${where(f)}: ${
            f.error instanceof Error ? f.error.message : String(f.error)
          }`
        ).join("; ")
      }`,
      { cause: last },
    );
  }

  /**
   * Asks the provider for machines, recording each (and its price) the
   * moment it is known.
   *
   * @param count How many.
   * @returns The machines launched (perhaps fewer).
   * @throws {BudgetExceededError} When they would take the pool past its
   *   budget within the next cost interval.
   */
  launch(count: number): Promise<Instance[]> {
    this.checkOpen();
    this.guard.admit(count, this.pricePerHour);
    const chosen = this.#chosen;
    return this.#hooks.track(
      this.provider.provision(this.#cluster, count).then((instances) => {
        for (const instance of instances) {
          this.instances.set(instance.id, instance);
          this.spend.open(
            instance.id,
            chosen ? machinePrice(chosen.offer, chosen.price, instance) : {},
          );
        }
        return instances;
      }),
    );
  }

  /**
   * How many of `count` more machines the budget allows over the next cost
   * interval.
   *
   * @param count The machines wanted.
   * @returns From 0 to `count`.
   */
  affordable(count: number): number {
    return this.guard.afford(count, this.pricePerHour);
  }

  /**
   * Polls a launched machine, with backoff, until it runs.
   *
   * @param instance The machine as launched.
   * @returns The machine as it runs (with its endpoint).
   * @throws {ProvisioningError} When it was terminated first.
   */
  async waitRunning(instance: Instance): Promise<Instance> {
    let current: Instance | undefined = instance;
    for (let attempt = 1; current?.status !== "running"; attempt++) {
      if (!current || current.status === "terminated") {
        throw new ProvisioningError(
          `Instance ${instance.id} was terminated before it ran`,
        );
      }
      await sleep(backoff(attempt, RUNNING_POLL), this.#starting);
      this.checkOpen();
      current = await this.provider.getInstance(this.#cluster, instance.id);
    }
    this.instances.set(current.id, current);
    return current;
  }

  /**
   * Asks the provider whether a machine is still there.
   *
   * @param instance The machine.
   * @returns Whether the provider still has it (an error counts as yes).
   */
  async isThere(instance: Instance): Promise<boolean> {
    const current = await this.provider.getInstance(this.#cluster, instance.id)
      .catch(() => instance);
    return current !== undefined && current.status !== "terminated";
  }

  /**
   * Opens the transport to a machine.
   *
   * @param endpoint Where it is.
   * @param index The node it is to be, for the error.
   * @returns The connection.
   * @throws {ProvisioningError} When it cannot be reached.
   */
  async connect(endpoint: Endpoint, index: number): Promise<Host> {
    if (endpoint.kind === "local") return new LocalHost(endpoint.dir);
    const target = `${endpoint.user}@${endpoint.host}:${endpoint.port}`;
    try {
      const { dialSsh } = await sshTransport();
      return await dialSsh(endpoint, 5);
    } catch (error) {
      throw new ProvisioningError(
        `Cannot reach node ${index} at ${target}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
  }

  /**
   * Releases machines the pool holds (those already released are skipped);
   * a failure is logged, not thrown.
   *
   * @param ids The machines.
   * @returns Whether any was still held.
   */
  async release(ids: string[]): Promise<boolean> {
    const held = ids.filter((id) => this.instances.delete(id));
    if (held.length === 0) return false;
    await this.provider.terminate(this.#cluster, held).catch((error) =>
      log.warn("Cannot release machine(s) {ids}: {error}", {
        ids: held.join(", "),
        error,
      })
    );
    this.spend.close(held);
    return true;
  }

  /**
   * Releases machines launched for a pool that closed meanwhile (never
   * recorded as held).
   *
   * @param instances The machines.
   */
  async discard(instances: Instance[]): Promise<void> {
    for (const instance of instances) this.instances.delete(instance.id);
    await this.provider.terminate(
      this.#cluster,
      instances.map((i) => i.id),
    ).catch(() => {});
    this.spend.close(instances.map((i) => i.id));
  }

  /**
   * Terminates every machine held and tears the cluster down, each call
   * retried.
   *
   * @throws What the provider threw last, when it could not.
   */
  async releaseAll(): Promise<void> {
    if (!this.#prepared) return this.spend.closeAll();
    const ids = [...this.instances.keys()];
    try {
      if (ids.length > 0) {
        await retry(
          () => this.provider.terminate(this.#cluster, ids),
          RELEASE,
        );
      }
    } finally {
      this.spend.closeAll();
    }
    await retry(() => this.provider.teardown(this.#cluster), RELEASE);
  }
}

/**
 * What the dashboard shows, folded from a pool's records: its events, the
 * samples of its queue and the line that describes the pool. The server
 * keeps one {@linkcode DashboardState} and sends its
 * {@linkcode DashboardState.snapshot} to the page; the page only draws it.
 *
 * The records are the lines of an event log (`eventLog` on the pool, read by
 * `skyward dashboard <file>`) as well: every line is one record.
 *
 * @module
 */
import type { PoolEvent } from "../events.ts";

/** The first record: the pool and what it was started with. */
export interface PoolInfo {
  /** The record's type. */
  type: "PoolInfo";
  /** When the pool started, in epoch milliseconds. */
  time: number;
  /** The pool's id. */
  pool: string;
  /** The provider's name. */
  provider: string;
  /** The accelerator of the offer chosen, else what each node was asked for, if any. */
  accelerator?: string;
  /** How many nodes were asked for. */
  nodes: number;
  /** The budget, when the pool has one, in US dollars. */
  budget?: { maxCost: number; warnAt?: number };
}

/** How many tasks wait for a node and how many are not finished, sampled. */
export interface QueueSample {
  /** The record's type. */
  type: "QueueSample";
  /** When it was sampled, in epoch milliseconds. */
  time: number;
  /** The pool's id. */
  pool: string;
  /** Tasks waiting for a node. */
  queued: number;
}

/** One line of an event log: an event of the pool or a record of the dashboard. */
export type DashboardRecord = PoolEvent | PoolInfo | QueueSample;

/** A node as the page shows it. */
export interface NodeView {
  /** The node's index (its rank; 0 is the head). */
  rank: number;
  /** Its lifecycle state. */
  state:
    | "launching"
    | "running"
    | "bootstrapping"
    | "ready"
    | "lost"
    | "retired"
    | "released";
  /** The provider's id of its machine. */
  instance?: string;
  /** The address the client reaches it at. */
  address?: string;
  /** The machine's host name. */
  hostname?: string;
  /** Price of its machine, in US dollars per hour. */
  pricePerHour?: number;
  /** Whether that is a spot price. */
  spot?: boolean;
  /** Spent on it so far, in US dollars. */
  spent?: number;
  /** Tasks it runs now. */
  running: number;
  /** Tasks it finished, in success or failure. */
  done: number;
  /** Bootstrap phases, in order. */
  phases: {
    phase: string;
    status: string;
    /** Start, in ms from the pool's start. */
    start: number;
    /** Duration in ms, once ended. */
    elapsedMs?: number;
  }[];
  /** Its last log lines. */
  logs: { time: number; stream: "stdout" | "stderr"; line: string }[];
}

/** A failed task as the page shows it. */
export interface FailureView {
  /** The task's id. */
  task: number;
  /** The compute's name. */
  name: string;
  /** The node's index. */
  node: number;
  /** The error's name. */
  error: string;
  /** The error's message. */
  message: string;
  /** When, in epoch milliseconds. */
  time: number;
}

/** Everything the page draws, sent whole at each update. */
export interface Snapshot {
  /** The pool's id. */
  pool?: string;
  /** The provider's name. */
  provider?: string;
  /** The accelerator of the offer chosen, else the one asked for. */
  accelerator?: string;
  /** When the pool started, in epoch milliseconds. */
  startedAt?: number;
  /** When the pool was ready, in epoch milliseconds. */
  readyAt?: number;
  /** The nodes by rank. */
  nodes: NodeView[];
  /** Task counts. */
  tasks: { running: number; queued: number; done: number; failed: number };
  /** Finished tasks per second: `[epoch seconds, completed, failed]`. */
  throughput: [number, number, number][];
  /** The last failures, newest last. */
  failures: FailureView[];
  /** Spend, once the pool reports it (US dollars). */
  cost?: { spent: number; ratePerHour: number };
  /** The budget and where it stands. */
  budget?: {
    maxCost: number;
    warnAt?: number;
    state: "ok" | "warning" | "exceeded";
    /** The last scale-up the budget held back. */
    limited?: { wanted: number; allowed: number; time: number };
  };
  /** Set once the pool released its machines, in epoch milliseconds. */
  closedAt?: number;
  /** When the last record happened, in epoch milliseconds. */
  updatedAt?: number;
}

/** Log lines kept per node. */
const LOG_LIMIT = 200;
/** Failures kept. */
const FAILURE_LIMIT = 50;
/** Seconds of throughput kept. */
const SERIES_LIMIT = 900;

/**
 * The dashboard's view of one pool, folded from its records.
 *
 * @example
 * ```ts
 * import { DashboardState } from "./state.ts";
 *
 * const state = new DashboardState();
 * state.apply({ type: "InstanceLaunched", time: 1, pool: "p", node: 0, instance: "i-1" });
 * state.apply({ type: "NodeReady", time: 2, pool: "p", node: 0, instance: "i-1", pid: 7, hostname: "h" });
 * console.log(state.snapshot().nodes[0].state); // "ready"
 * ```
 */
export class DashboardState {
  #snapshot: Snapshot = {
    nodes: [],
    tasks: { running: 0, queued: 0, done: 0, failed: 0 },
    throughput: [],
    failures: [],
  };
  /** The node of each running task. */
  #running = new Map<number, number>();

  /** The current view; the same object, updated in place. */
  snapshot(): Snapshot {
    this.#snapshot.tasks.running = this.#running.size;
    return this.#snapshot;
  }

  #node(rank: number): NodeView {
    const nodes = this.#snapshot.nodes;
    let node = nodes.find((n) => n.rank === rank);
    if (!node) {
      node = {
        rank,
        state: "launching",
        running: 0,
        done: 0,
        phases: [],
        logs: [],
      };
      nodes.push(node);
      nodes.sort((a, b) => a.rank - b.rank);
    }
    return node;
  }

  /**
   * Extends the throughput to `second`: seconds without a finished task
   * count as zero, so the chart drops while the pool idles.
   */
  #padTo(second: number): void {
    const series = this.#snapshot.throughput;
    const last = series.at(-1);
    if (!last || last[0] >= second) return;
    for (
      let s = Math.max(last[0] + 1, second - SERIES_LIMIT + 1);
      s <= second;
      s++
    ) {
      series.push([s, 0, 0]);
    }
    if (series.length > SERIES_LIMIT) {
      series.splice(0, series.length - SERIES_LIMIT);
    }
  }

  #finished(time: number, failed: boolean): void {
    const second = Math.floor(time / 1000);
    const series = this.#snapshot.throughput;
    if (series.length === 0) series.push([second, 0, 0]);
    this.#padTo(second);
    const bucket = series.findLast((b) => b[0] === second);
    if (bucket) bucket[failed ? 2 : 1]++;
  }

  #taskEnded(task: number): void {
    const node = this.#running.get(task);
    if (node === undefined) return;
    this.#running.delete(task);
    const view = this.#node(node);
    view.running = Math.max(0, view.running - 1);
    view.done++;
  }

  /**
   * Folds one record into the view; records of unknown types are ignored,
   * so that a newer pool's log is read by an older dashboard.
   */
  apply(record: DashboardRecord): void {
    const s = this.#snapshot;
    s.updatedAt = record.time;
    this.#padTo(Math.floor(record.time / 1000));
    switch (record.type) {
      case "PoolInfo":
        s.pool = record.pool;
        s.provider = record.provider;
        // (Unless the offer chosen is known already.)
        s.accelerator ??= record.accelerator;
        s.startedAt = record.time;
        if (record.budget) s.budget = { ...record.budget, state: "ok" };
        return;
      case "QueueSample":
        s.tasks.queued = record.queued;
        return;
      case "ClusterProvisioned":
        s.pool ??= record.pool;
        s.provider = record.provider;
        // The offer chosen, rather than all that were asked for.
        if (record.accelerator) s.accelerator = record.accelerator;
        s.startedAt ??= record.time;
        return;
      case "InstanceLaunched": {
        const node = this.#node(record.node);
        Object.assign(node, {
          state: "launching",
          instance: record.instance,
          phases: [],
        });
        if (record.pricePerHour !== undefined) {
          node.pricePerHour = record.pricePerHour;
          node.spot = record.spot;
        }
        return;
      }
      case "InstanceRunning":
        Object.assign(this.#node(record.node), {
          state: "running",
          instance: record.instance,
          address: record.address,
        });
        return;
      case "InstanceProvisioned":
        this.#node(record.node).state = "bootstrapping";
        return;
      case "BootstrapPhase": {
        const node = this.#node(record.node);
        const start = record.time - record.elapsedMs - (s.startedAt ?? 0);
        const phase = node.phases.findLast((p) => p.phase === record.phase);
        if (record.status === "started" || !phase) {
          node.phases.push({
            phase: record.phase,
            status: record.status,
            start,
            elapsedMs: record.status === "started"
              ? undefined
              : record.elapsedMs,
          });
        } else {
          phase.status = record.status;
          phase.elapsedMs = record.elapsedMs;
        }
        return;
      }
      case "NodeReady": {
        const node = this.#node(record.node);
        node.state = "ready";
        node.instance = record.instance;
        node.hostname = record.hostname;
        if (record.pricePerHour !== undefined) {
          node.pricePerHour = record.pricePerHour;
          node.spot = record.spot;
        }
        return;
      }
      case "ClusterReady":
        s.readyAt = record.time;
        return;
      case "TaskStarted": {
        // A task sent again (its node was lost) leaves its first node.
        const before = this.#running.get(record.task);
        if (before !== undefined) {
          const node = this.#node(before);
          node.running = Math.max(0, node.running - 1);
        }
        this.#running.set(record.task, record.node);
        this.#node(record.node).running++;
        return;
      }
      case "TaskCompleted":
        s.tasks.done++;
        this.#taskEnded(record.task);
        this.#finished(record.time, false);
        return;
      case "TaskFailed":
        s.tasks.failed++;
        this.#taskEnded(record.task);
        this.#finished(record.time, true);
        s.failures.push({
          task: record.task,
          name: record.name,
          node: record.node,
          error: record.error,
          message: record.message,
          time: record.time,
        });
        if (s.failures.length > FAILURE_LIMIT) s.failures.shift();
        return;
      case "NodeLost":
        this.#node(record.node).state = "lost";
        return;
      case "InstanceReplaced":
        Object.assign(this.#node(record.node), {
          state: "launching",
          instance: record.instance,
          phases: [],
        });
        return;
      case "NodeRetired":
        this.#node(record.node).state = "retired";
        return;
      case "Log": {
        const logs = this.#node(record.node).logs;
        logs.push({
          time: record.time,
          stream: record.stream,
          line: record.line,
        });
        if (logs.length > LOG_LIMIT) logs.shift();
        return;
      }
      case "ClusterDestroyed": {
        for (const node of s.nodes) node.state = "released";
        if (record.cost !== undefined) {
          s.cost = { spent: record.cost, ratePerHour: 0 };
        }
        s.closedAt = record.time;
        return;
      }
      case "Cost": {
        s.cost = { spent: record.spent, ratePerHour: record.ratePerHour };
        for (const n of record.nodes) {
          if (n.node < 0) continue;
          const node = this.#node(n.node);
          node.pricePerHour = n.pricePerHour;
          node.spent = n.spent;
        }
        return;
      }
      case "BudgetLimited":
        s.budget = {
          maxCost: record.maxCost,
          warnAt: s.budget?.warnAt,
          state: s.budget?.state ?? "ok",
          limited: {
            wanted: record.wanted,
            allowed: record.allowed,
            time: record.time,
          },
        };
        s.cost = { spent: record.spent, ratePerHour: s.cost?.ratePerHour ?? 0 };
        return;
      case "BudgetWarning":
      case "BudgetExceeded":
        s.budget = {
          limited: s.budget?.limited,
          maxCost: record.maxCost,
          warnAt: record.type === "BudgetWarning"
            ? record.warnAt
            : s.budget?.warnAt,
          state: record.type === "BudgetWarning" ? "warning" : "exceeded",
        };
        s.cost = { spent: record.spent, ratePerHour: s.cost?.ratePerHour ?? 0 };
        return;
    }
  }

  /** Marks the pool closed, when its records end without a `ClusterDestroyed`. */
  close(time: number): void {
    this.#snapshot.closedAt ??= time;
  }
}

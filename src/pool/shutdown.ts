/**
 * The pool's close sequence, in order: stop its timers, fail the tasks
 * still queued or running, close the workers and connections, wait for the
 * launches under way (so that every machine they bring is known), release
 * the machines and the cluster, then end the events. What runs at process
 * exit (closing every open pool) is `teardown.ts`.
 *
 * @module
 */
import { PoolClosedError, ProvisioningError } from "../errors.ts";
import type { EventInit } from "../events.ts";
import { sweepAdvice } from "../provider.ts";
import type { Host } from "../transport/host.ts";
import type { PoolNode } from "./node_state.ts";
import type { Provisioner } from "./provisioner.ts";

/** What {@linkcode shutdown} closes, and how. */
export interface ShutdownParts {
  /** The pool's id, for the error. */
  poolId: string;
  /** When the pool started, in ms since the epoch. */
  startedAt: number;
  /** What the tasks fail with. @default a `PoolClosedError` */
  error?: Error;
  /** Dollars spent on the machines, once released, when they had a price. */
  cost?: () => number | undefined;
  /** Stops the pool's timers: scaling, health checks, heartbeat, ttl, starvation. */
  stopTimers(): void;
  /** Fails every task queued or running with `error`. */
  failTasks(error: Error): void;
  /** The nodes by rank. */
  nodes: (PoolNode | undefined)[];
  /** Every connection opened to a machine, also those not yet a node. */
  hosts: Iterable<Host>;
  /** Provider calls and node bring-ups under way. */
  inflight: Set<Promise<unknown>>;
  /** The machines and the cluster. */
  provisioner: Provisioner;
  /** Reports an event. */
  emit(event: EventInit): void;
  /** Ends the events: the console, the subscribers. */
  endEvents(): void;
}

/**
 * Closes a pool, step by step; each step runs even when an earlier one
 * failed.
 *
 * @param parts What to close.
 * @throws {ProvisioningError} When something could not be released, naming
 *   the cluster that may be left at the provider and how to sweep it.
 *
 * @example
 * ```ts ignore
 * await shutdown({ poolId, startedAt, stopTimers, failTasks, nodes, hosts, inflight, provisioner, emit, endEvents });
 * ```
 */
export async function shutdown(parts: ShutdownParts): Promise<void> {
  parts.stopTimers();
  const closed = parts.error ?? new PoolClosedError(
    "The pool was closed before the task finished",
  );
  parts.failTasks(closed);
  const errors: unknown[] = [];
  await Promise.all(
    parts.nodes.filter((n): n is PoolNode => n !== undefined).map(
      async (node) => {
        try {
          await node.session?.close(closed);
          await node.host.close();
        } catch (error) {
          errors.push(error);
        }
      },
    ),
  );
  // Connections of nodes still coming up: closing them cuts their
  // bootstrap short. Then wait for every launch under way, so that each
  // machine it brings is known, and terminated below.
  await Promise.allSettled([...parts.hosts].map((host) => host.close()));
  while (parts.inflight.size > 0) {
    await Promise.allSettled([...parts.inflight]);
  }
  const { provisioner } = parts;
  try {
    await provisioner.releaseAll();
  } catch (error) {
    errors.push(error);
  }
  if (provisioner.prepared) {
    const cost = parts.cost?.();
    parts.emit({
      type: "ClusterDestroyed",
      elapsedMs: Date.now() - parts.startedAt,
      ...cost !== undefined && { cost },
    });
  }
  parts.endEvents();
  if (errors.length > 0) {
    throw new ProvisioningError(
      `Pool ${parts.poolId} was not released completely: ${
        errors.map((e) => e instanceof Error ? e.message : String(e)).join(
          "; ",
        )
      }. Machines of cluster ${parts.poolId} may be left on ${provisioner.provider.name}. ${
        sweepAdvice(provisioner.provider, parts.poolId)
      }`,
      { cause: errors[0] },
    );
  }
}

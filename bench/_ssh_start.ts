/**
 * A 3-node SSH pool's start to its first result, timed step by step from
 * the pool's events; shared by `ssh.ts` and `ssh_start.ts` (which runs it
 * in a fresh process, where the SSH client is not loaded yet). Imports no
 * SSH code of its own.
 *
 * @module
 */
import * as sky from "../mod.ts";
import { RIG_DIR, type RigHost } from "../tests/rig/rig.ts";
import { noop } from "./computes.ts";
import { percentile } from "./_util.ts";

/** The SSH provider of the rig's hosts. */
export function provider(hosts: RigHost[]) {
  return sky.SSH({
    hosts: hosts.map((h) => `${h.user}@${h.address}:${h.port}`),
    key: hosts[0].keyPath,
    knownHosts: `${RIG_DIR}/known_hosts`,
  });
}

/** Where the time of one pool start to its first result went, in ms (slowest node of each step). */
export interface StartBreakdown {
  total: number;
  /** TCP connection, SSH handshake and login. */
  dial: number;
  /**
   * The bootstrap's look at what the host holds, every phase included. On a
   * ready host this is the one command that looks and starts the worker,
   * until the worker's process is started.
   */
  check: number;
  /** The code phase within it: staging check (and upload, when one is needed). */
  staging: number;
  /** Worker process start (from its exec, or from its start by the quick look) and handshake. */
  worker: number;
  /** The first task, sandbox start included. */
  task: number;
}

/** Starts a 3-node pool on the hosts and runs one task, timing each step from the pool's events. */
export async function timedStart(hosts: RigHost[]): Promise<StartBreakdown> {
  const at = new Map<string, number>();
  const slowest = { dial: 0, check: 0, staging: 0, worker: 0, task: 0 };
  const t0 = performance.now();
  await using pool = await sky.ComputePool.start({
    provider: provider(hosts),
    nodes: 3,
    console: "silent",
    onEvent: (e) => {
      const now = performance.now();
      const max = (k: keyof typeof slowest, v: number) =>
        slowest[k] = Math.max(slowest[k], v);
      if (e.type === "InstanceRunning") at.set(`run${e.node}`, now);
      if (e.type === "InstanceProvisioned") {
        max("dial", now - (at.get(`run${e.node}`) ?? t0));
      }
      if (e.type === "InstanceBootstrapped") max("check", e.elapsedMs);
      if (e.type === "BootstrapPhase" && e.status !== "started") {
        if (e.phase === "code") max("staging", e.elapsedMs);
        if (e.phase === "worker") max("worker", e.elapsedMs);
      }
      if (e.type === "TaskCompleted") max("task", e.elapsedMs);
    },
  });
  await pool.run(noop());
  return { total: performance.now() - t0, ...slowest };
}

/** The median of each field. */
export function medians(runs: StartBreakdown[]): StartBreakdown {
  const m = (k: keyof StartBreakdown) =>
    percentile(runs.map((r) => r[k]).sort((a, b) => a - b), 0.5);
  return {
    total: m("total"),
    dial: m("dial"),
    check: m("check"),
    staging: m("staging"),
    worker: m("worker"),
    task: m("task"),
  };
}

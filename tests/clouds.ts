/**
 * Pieces the cloud providers' end-to-end tests share: the rig's hosts as a
 * fake cloud hands them out, tests that need the rig, and the lifecycle
 * every pool goes through.
 *
 * @module
 */
import assert from "node:assert/strict";
import type * as sky from "../mod.ts";
import { RIG_DIR, type RigHost, type RigLease } from "./rig/rig.ts";

/** A rig host as a fake cloud hands it out as a machine. */
export interface CloudHost {
  /** Its address, the machine's public (and private) address. */
  address: string;
  /** Its SSH port. */
  port: number;
  /** The login user. */
  user: string;
  /** Its SSH host key line. */
  hostKey?: string;
  /** The `authorized_keys` file its sshd reads. */
  authorizedKeysPath: string;
  /** The pid file of its listening sshd. */
  sshdPidPath: string;
}

/** The rig's hosts, as the fake clouds take them. */
export function cloudHosts(hosts: RigHost[]): CloudHost[] {
  return hosts.map((h) => ({
    address: h.address,
    port: h.port,
    user: h.user,
    hostKey: h.hostKey,
    authorizedKeysPath: `${RIG_DIR}/host${h.index}/authorized_keys`,
    sshdPidPath: `${RIG_DIR}/host${h.index}/sshd.pid`,
  }));
}

/** Declares tests that need the rig: ignored (with the reason printed) without it. */
export function rigTester(
  rig: RigLease | null,
): (name: string, fn: (hosts: RigHost[]) => Promise<void>) => void {
  return (name, fn) =>
    Deno.test({ name, ignore: !rig, fn: () => fn(rig!.hosts) });
}

/** Asserts that a pool went through every lifecycle event, start to teardown. */
export function assertLifecycle(events: sky.PoolEvent[]): void {
  const types = events.map((e) => e.type);
  for (
    const type of [
      "ClusterProvisioned",
      "InstanceLaunched",
      "InstanceRunning",
      "InstanceProvisioned",
      "InstanceBootstrapped",
      "NodeReady",
      "ClusterReady",
      "ClusterDestroyed",
    ]
  ) {
    assert.ok(
      types.includes(type as sky.PoolEvent["type"]),
      `${type} missing from ${types.join(", ")}`,
    );
  }
}

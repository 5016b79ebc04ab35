/**
 * Pieces the providers' end-to-end tests share: the rig's hosts as a fake
 * cloud hands them out, tests that need the rig, the lifecycle every pool
 * goes through, and what each provider (or its fake) still holds after a
 * pool, listed one line per resource.
 *
 * @module
 */
import assert from "node:assert/strict";
import type * as sky from "../mod.ts";
import type { FakeEc2 } from "./fakes/ec2.ts";
import type { FakeRunPod } from "./fakes/runpod.ts";
import type { FakeVastAI } from "./fakes/vastai.ts";
import type { FakeVerda } from "./fakes/verda.ts";
import { listBridges } from "../providers/container/netns.ts";
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

/**
 * Declares the last test of a file that needs the rig: it takes the rig down
 * if this file brought it up (see `requireRig`).
 */
export function releaseRigAtEnd(rig: RigLease | null): void {
  Deno.test({
    name: "the rig is released by the file that brought it up",
    ignore: !rig?.created,
    fn: () => rig!.release(),
  });
}

/** The login user of each rig host, by address: a fake's machines' `sshUser`. */
export function rigUsers(hosts: RigHost[]): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [h.address, h.user]));
}

/**
 * Asserts that a pool went through every lifecycle event, in order: the
 * cluster provisioned first; for each node, launched, running, provisioned,
 * bootstrapped, then ready; the cluster ready once every node of the start
 * was; destroyed last.
 */
export function assertLifecycle(events: sky.PoolEvent[]): void {
  const types = events.map((e) => e.type);
  const trail = types.join(", ");
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
      `${type} missing from ${trail}`,
    );
  }
  assert.equal(types[0], "ClusterProvisioned", trail);
  assert.equal(types.at(-1), "ClusterDestroyed", trail);
  const ready = types.indexOf("ClusterReady");
  const { nodes } = events[0] as sky.ClusterProvisioned;
  for (let node = 0; node < nodes; node++) {
    const at = [
      "InstanceLaunched",
      "InstanceRunning",
      "InstanceProvisioned",
      "InstanceBootstrapped",
      "NodeReady",
    ].map((type) =>
      events.findIndex((e) =>
        e.type === type && (e as { node: number }).node === node
      )
    );
    assert.ok(
      at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])),
      `node ${node}'s lifecycle is missing or out of order: ${trail}`,
    );
    assert.ok(at[4] < ready, `ClusterReady before node ${node}: ${trail}`);
  }
}

/**
 * What a fake holds, and the lines of the rig hosts' `authorized_keys` it
 * added for one of its machines (`<key> <prefix>:<id>`): only this fake's,
 * as other tests may use the hosts at the same time.
 */
async function held(
  hosts: RigHost[],
  prefix: string,
  ids: string[],
  resources: string[],
): Promise<string[]> {
  const left = [...resources];
  for (const host of hosts) {
    const keys = await Deno.readTextFile(
      `${RIG_DIR}/host${host.index}/authorized_keys`,
    );
    for (const line of keys.split("\n")) {
      const id = ids.find((id) => line.endsWith(` ${prefix}:${id}`));
      if (id) left.push(`key authorised on ${host.name} for ${id}`);
    }
  }
  return left;
}

/** What the fake EC2 holds (live instances, groups, key pairs) and the keys it authorised on the hosts. */
export function ec2Leftovers(
  fake: FakeEc2,
  hosts: RigHost[] = [],
): Promise<string[]> {
  return held(hosts, "fake-ec2", fake.instances.map((i) => i.id), [
    ...fake.live.map((i) => `instance ${i.id} ${i.state}`),
    ...fake.securityGroups.map((g) => `security group ${g}`),
    ...fake.keyPairs.map((k) => `key pair ${k}`),
  ]);
}

/** What the fake RunPod holds (pods not terminated) and the keys it authorised on the hosts. */
export function runpodLeftovers(
  fake: FakeRunPod,
  hosts: RigHost[] = [],
): Promise<string[]> {
  const live = fake.live.map((p) => `pod ${p.name} ${p.desiredStatus}`);
  return held(hosts, "fake-runpod", fake.pods.map((p) => p.id), live);
}

/** What the fake Vast.ai holds (instances not destroyed, SSH keys) and the keys it authorised on the hosts. */
export function vastaiLeftovers(
  fake: FakeVastAI,
  hosts: RigHost[] = [],
): Promise<string[]> {
  const ids = fake.instances.map((i) => String(i.id));
  return held(hosts, "fake-vastai", ids, [
    ...fake.live.map((i) => `instance ${i.id} ${i.actual_status}`),
    ...fake.sshKeys.map((k) => `ssh key ${k.slice(-40)}`),
  ]);
}

/**
 * What the fake Verda holds (instances, SSH keys, scripts, volumes, the
 * trash) and the keys it authorised on the hosts. A deleted instance leaves
 * the fake's list: its id is in the request that deleted it.
 */
export function verdaLeftovers(
  fake: FakeVerda,
  hosts: RigHost[] = [],
): Promise<string[]> {
  const ids = [
    ...fake.instances.map((i) => i.id),
    ...JSON.stringify(fake.requests).match(/[0-9a-f-]{36}/g) ?? [],
  ];
  return held(hosts, "fake-verda", ids, [
    ...fake.instances.map((i) => `instance ${i.id} ${i.status}`),
    ...fake.sshKeys.map((k) => `ssh key ${k.name}`),
    ...fake.scripts.map((s) => `script ${s.name}`),
    ...fake.volumes.map((v) => `volume ${v.name}`),
    ...fake.trash.map((v) => `volume in the trash ${v.name}`),
  ]);
}

/** A container CLI, on a daemon. */
export interface ContainerCli {
  /** The CLI. */
  binary: "docker" | "podman";
  /** The daemon, for Docker ("" for Podman, which has none). */
  host: string;
}

/** Runs a container CLI; a failure throws with its stderr. */
export async function containerCli(
  { binary, host }: ContainerCli,
  ...args: string[]
): Promise<string> {
  const out = await new Deno.Command(binary, {
    args,
    env: binary === "docker" ? { DOCKER_HOST: host } : {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${binary} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Names of the containers and networks (for Podman, bridges) that carry a
 * cluster's label.
 */
export async function containerLeftovers(
  cli: ContainerCli,
  cluster: string,
): Promise<string[]> {
  const filter = `label=skyward.cluster=${cluster}`;
  const lines = (text: string) => text.split("\n").filter(Boolean);
  const containers = lines(
    await containerCli(
      cli,
      "ps",
      "-a",
      "--filter",
      filter,
      "--format",
      "{{.Names}}",
    ),
  );
  if (cli.binary === "podman") {
    const bridges = [...await listBridges()]
      .filter(([, labels]) => labels["skyward.cluster"] === cluster)
      .map(([name]) => name);
    return [...containers, ...bridges];
  }
  const networks = await containerCli(
    cli,
    "network",
    "ls",
    "--filter",
    filter,
    "--format",
    "{{.Name}}",
  );
  return [...containers, ...lines(networks)];
}

/**
 * The reliability suite (`deno task test:reliability`): pools under injected
 * faults — workers killed, machines taken back, provisioning failing, SSH
 * links cut or slowed, clients killed or stopped, failures at random points
 * of start and close. Each fault prints one line:
 *
 *     fault=<name> submitted=N completed=N duplicated=N lost=N
 *
 * where `completed` counts tasks whose caller got their right result,
 * `duplicated` results delivered more than once (a task completed twice),
 * and `lost` tasks whose caller got no result. The goals are asserted:
 * every task completed exactly once; no worker outlives a killed client
 * beyond the grace period; nothing left after a failed start or close.
 *
 * SSH faults use the test rig's hosts, container faults the private Docker
 * daemon and Podman; without them those faults are ignored, with the reason.
 */
import assert from "node:assert/strict";
import * as sky from "../../mod.ts";
import type { ContainerCluster } from "../../providers/container/mod.ts";
import {
  type FailurePoint,
  FaultyProvider,
  NodeKiller,
  type ProviderCall,
} from "../faults.ts";
import { alive, eventually, rigSsh, tempRoot } from "../helpers.ts";
import { requireDocker, requirePodman } from "../rig/dockerd.ts";
import { requireRig, RIG_DIR, type RigHost } from "../rig/rig.ts";
import { echo } from "./computes.ts";

const root = await tempRoot();
const { rig, reason: rigReason } = await requireRig({ hosts: 2 });
const docker = await requireDocker();
const podman = await requirePodman();
if (!rig) console.warn(`reliability: SSH faults ignored: ${rigReason}`);
if (docker.reason) {
  console.warn(`reliability: Docker faults ignored: ${docker.reason}`);
}
if (podman.reason) {
  console.warn(`reliability: Podman faults ignored: ${podman.reason}`);
}

const TASKS = 1_000;

interface Tally {
  submitted: number;
  completed: number;
  duplicated: number;
  lost: number;
}

function report(fault: string, tally: Tally, extra = ""): void {
  console.log(
    `fault=${fault} submitted=${tally.submitted} completed=${tally.completed} ` +
      `duplicated=${tally.duplicated} lost=${tally.lost}${extra}`,
  );
}

function assertAllOnce(tally: Tally): void {
  assert.deepEqual(tally, {
    submitted: TASKS,
    completed: TASKS,
    duplicated: 0,
    lost: 0,
  });
}

/** Counts completions per task from the pool's events. */
class Ledger {
  readonly completions = new Map<number, number>();
  readonly events: sky.PoolEvent[] = [];
  readonly killer = new NodeKiller();
  onEvent = (event: sky.PoolEvent): void => {
    if (event.type === "TaskCompleted") {
      this.completions.set(
        event.task,
        (this.completions.get(event.task) ?? 0) + 1,
      );
    } else if (event.type !== "Log" && !event.type.startsWith("Task")) {
      this.events.push(event);
    }
    this.killer.onEvent(event);
  };
}

/** Submits `TASKS` tasks at once and counts what came back. */
async function runAll(pool: sky.ComputePool, ledger: Ledger): Promise<Tally> {
  const handles = Array.from({ length: TASKS }, (_, i) => pool.submit(echo(i)));
  const settled = await Promise.allSettled(
    handles.map((handle) => Promise.resolve(handle)),
  );
  let completed = 0;
  settled.forEach((result, i) => {
    if (result.status === "fulfilled" && result.value === i) completed++;
  });
  let duplicated = 0;
  for (const count of ledger.completions.values()) {
    if (count > 1) duplicated += count - 1;
  }
  return { submitted: TASKS, completed, duplicated, lost: TASKS - completed };
}

const rigProvider = (hosts: RigHost[]) => rigSsh(hosts);

Deno.test("a worker killed half-way through 1,000 tasks loses and duplicates none", async () => {
  const ledger = new Ledger();
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root }),
    nodes: 2,
    worker: { concurrency: 2 },
    console: "silent",
    onEvent: ledger.onEvent,
  });
  ledger.killer.afterTasks(1, TASKS / 2);
  const tally = await runAll(pool, ledger);
  report("kill-worker-halfway", tally);
  assert.ok(ledger.events.some((e) => e.type === "NodeLost"));
  assertAllOnce(tally);
});

Deno.test("a machine taken back half-way (spot interruption) is replaced; no task lost", async () => {
  const ledger = new Ledger();
  const provider = new FaultyProvider(sky.Local({ root }));
  await using pool = await sky.ComputePool.start({
    provider,
    nodes: 2,
    worker: { concurrency: 2 },
    console: "silent",
    onEvent: ledger.onEvent,
  });
  ledger.killer.afterTasks(1, TASKS / 2, (node) => {
    provider.preempt(ledger.killer.instances[node]);
    ledger.killer.killWorker(node);
  });
  const tally = await runAll(pool, ledger);
  report("preempt-machine-halfway", tally);
  await eventually(
    () => ledger.events.some((e) => e.type === "InstanceReplaced"),
    30_000,
    "the replacement",
  );
  assertAllOnce(tally);
});

Deno.test("provisioning that fails twice while replacing a machine is retried; no task lost", async () => {
  const ledger = new Ledger();
  const provider = new FaultyProvider(sky.Local({ root }), {
    // The pool's first call launches the nodes; the next two fail.
    fail: (call, count) =>
      call === "provision" && (count === 2 || count === 3)
        ? "before"
        : undefined,
  });
  await using pool = await sky.ComputePool.start({
    provider,
    nodes: 2,
    worker: { concurrency: 2 },
    console: "silent",
    onEvent: ledger.onEvent,
  });
  ledger.killer.afterTasks(1, TASKS / 2, (node) => {
    provider.preempt(ledger.killer.instances[node]);
    ledger.killer.killWorker(node);
  });
  const tally = await runAll(pool, ledger);
  await eventually(
    () => ledger.events.some((e) => e.type === "InstanceReplaced"),
    30_000,
    "the replacement",
  );
  report(
    "provision-fails-twice",
    tally,
    ` provisions=${provider.calls.provision}`,
  );
  assert.equal(provider.calls.provision, 4);
  assertAllOnce(tally);
});

function rigTest(name: string, fn: (hosts: RigHost[]) => Promise<void>): void {
  Deno.test({ name, ignore: !rig, fn: () => fn(rig!.hosts) });
}

rigTest(
  "an SSH connection cut half-way is reconnected; no task lost",
  async (hosts) => {
    const ledger = new Ledger();
    const provider = new FaultyProvider(rigProvider(hosts), { links: true });
    await using pool = await sky.ComputePool.start({
      provider,
      nodes: 2,
      worker: { concurrency: 2 },
      console: "silent",
      onEvent: ledger.onEvent,
    });
    ledger.killer.afterTasks(0, TASKS / 2, (node) => {
      provider.links.get(ledger.killer.instances[node])!.drop();
    });
    const tally = await runAll(pool, ledger);
    report("drop-connection-halfway", tally);
    assert.ok(ledger.events.some((e) => e.type === "NodeLost"));
    assertAllOnce(tally);
  },
);

rigTest(
  "an SSH link that goes silent without closing: the worker notices and stops, the pool restarts it; no task lost",
  async (hosts) => {
    const ledger = new Ledger();
    const provider = new FaultyProvider(rigProvider(hosts), { links: true });
    await using pool = await sky.ComputePool.start({
      provider,
      nodes: 2,
      worker: { concurrency: 2 },
      console: "silent",
      onEvent: ledger.onEvent,
      // A worker stops after 1 s without a heartbeat.
      deadManSwitch: { heartbeatInterval: 200, missedHeartbeats: 5 },
    });
    ledger.killer.afterTasks(0, TASKS / 2, (node) => {
      const link = provider.links.get(ledger.killer.instances[node])!;
      link.stall();
      setTimeout(() => link.resume(), 3_000);
    });
    const tally = await runAll(pool, ledger);
    report("stall-connection-halfway", tally);
    assertAllOnce(tally);
    // Node 1 may finish the work before the link comes back; the silent
    // worker has stopped by then, and the pool sees it lost once it does.
    await eventually(
      () => ledger.events.some((e) => e.type === "NodeLost" && e.node === 0),
      15_000,
      "the silent worker on node 0 to be lost",
    );
  },
);

rigTest(
  "a slow SSH link (20 ms each way per chunk) delays tasks but loses none",
  async (hosts) => {
    const ledger = new Ledger();
    const provider = new FaultyProvider(rigProvider(hosts), { links: true });
    await using pool = await sky.ComputePool.start({
      provider,
      nodes: 2,
      worker: { concurrency: 2 },
      console: "silent",
      onEvent: ledger.onEvent,
    });
    for (const link of provider.links.values()) link.delayMs = 20;
    const tally = await runAll(pool, ledger);
    report("slow-link", tally);
    assertAllOnce(tally);
  },
);

// ---------------------------------------------------------------------------
// Clients that die

const client = new URL("../fixtures/deadman_client.ts", import.meta.url)
  .pathname;

async function startClient(plan: unknown) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", client, JSON.stringify(plan)],
    env: { XDG_CACHE_HOME: root },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the client exited before its pool was ready");
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { child, pids: (JSON.parse(text) as { pids: number[] }).pids };
}

async function goneWithin(pids: number[], ms: number): Promise<number> {
  const start = Date.now();
  await eventually(
    async () => (await Promise.all(pids.map(alive))).every((a) => !a),
    ms,
    `workers ${pids.join(", ")} to be gone`,
  );
  return Date.now() - start;
}

Deno.test("a client killed with SIGKILL leaves no local worker", async () => {
  const { child, pids } = await startClient({
    provider: "local",
    root,
    nodes: 2,
    deadManSwitch: { heartbeatInterval: 200, missedHeartbeats: 5, grace: 0 },
  });
  child.kill("SIGKILL");
  await child.status;
  const ms = await goneWithin(pids, 5_000);
  console.log(
    `fault=client-sigkill provider=local workers=${pids.length} left=0 gone_after_ms=${ms}`,
  );
});

for (const signal of ["SIGKILL", "SIGSTOP"] as const) {
  rigTest(
    `a client stopped with ${signal} leaves no worker on SSH hosts beyond the grace period`,
    async () => {
      const grace = 3_000;
      const silence = 1_000;
      const name = `skyward-poweroff-${crypto.randomUUID()}`;
      const { child, pids } = await startClient({
        provider: `${RIG_DIR}/hosts.json`,
        nodes: 2,
        powerOff: `touch /tmp/${name}`,
        deadManSwitch: {
          heartbeatInterval: 200,
          missedHeartbeats: silence / 200,
          grace,
        },
      });
      try {
        child.kill(signal);
        // Orphaned at once (SIGKILL closes the connection) or after the
        // silence (SIGSTOP keeps it open), then the grace; plus slack for a
        // loaded machine.
        const limit = grace + (signal === "SIGSTOP" ? silence : 0);
        const ms = await goneWithin(pids, limit + 5_000);
        const markers = await Promise.all(
          [0, 1].map((i) =>
            Deno.stat(`${RIG_DIR}/host${i}/tmp/${name}`).then(() => 1, () => 0)
          ),
        );
        console.log(
          `fault=client-${signal.toLowerCase()} provider=ssh workers=${pids.length} left=0 ` +
            `gone_after_ms=${ms} grace_ms=${grace} powered_off=${
              markers.reduce((a, b) => a + b, 0 as number)
            }`,
        );
        assert.deepEqual(markers, [1, 1]);
        assert.ok(ms >= grace - 500, `gone after ${ms} ms, before the grace`);
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // Killed already.
        }
        await child.status;
        for (const i of [0, 1]) {
          await Deno.remove(`${RIG_DIR}/host${i}/tmp/${name}`).catch(() => {});
        }
      }
    },
  );
}

// ---------------------------------------------------------------------------
// Random failure points during start and close

/** A small seeded generator, so that a failing run can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CALLS: ProviderCall[] = [
  "offers",
  "prepare",
  "provision",
  "getInstance",
  "terminate",
  "teardown",
];

/** Worker processes running from under a directory. */
async function localWorkers(dir: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cwd = await Deno.readLink(`/proc/${entry.name}/cwd`).catch(() => "");
    if (cwd.startsWith(dir) && await alive(Number(entry.name))) {
      found.push(Number(entry.name));
    }
  }
  return found;
}

async function command(
  binary: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(binary, {
    args,
    env,
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("100 random failure points during start and close leave no process, namespace or container", async () => {
  const seed = Number(Deno.env.get("SKYWARD_CHAOS_SEED") ?? 20261128);
  const rand = random(seed);
  const localRoot = `${root}/chaos`;
  const runtimes: ("local" | "docker" | "podman")[] = [];
  for (let i = 0; i < 100; i++) {
    runtimes.push(
      i % 12 === 3 && !docker.reason
        ? "docker"
        : i % 25 === 7 && !podman.reason
        ? "podman"
        : "local",
    );
  }
  const clusters: { runtime: string; id: string; cluster: unknown }[] = [];
  const netnsBefore = (await command("ip", ["netns", "list"])).split("\n")
    .filter(Boolean).length;
  let started = 0;
  let failed = 0;
  for (const [i, runtime] of runtimes.entries()) {
    const target = CALLS[Math.floor(rand() * CALLS.length)];
    const occurrence = 1 + Math.floor(rand() * 2);
    const point: FailurePoint = rand() < 0.5 ? "before" : "after";
    const inner = runtime === "local"
      ? sky.Local({ root: localRoot })
      : sky.Container(
        runtime === "docker"
          ? { binary: "docker", host: docker.host! }
          : { binary: "podman" },
      );
    // Each call is delayed a little, and one of them long enough for the
    // pool to close while it is under way (a launch still in flight).
    const delays = new Map(CALLS.map((call) => [call, rand() * 40]));
    delays.set(
      CALLS[Math.floor(rand() * CALLS.length)],
      rand() * (runtime === "local" ? 1_500 : 4_000),
    );
    const provider = new FaultyProvider<unknown>(inner as sky.Provider, {
      // A lost reply to prepare leaves what only a sweep can find: the
      // pool never learns the cluster's record. Not injected.
      fail: (call, count) =>
        call === target && count === occurrence &&
          !(call === "prepare" && point === "after")
          ? point
          : undefined,
      delay: (call) => delays.get(call) ?? 0,
    });
    // A timeout closes the pool at a random moment of its start.
    const provisionTimeout = runtime === "local"
      ? 100 + Math.floor(rand() * 2_000)
      : 500 + Math.floor(rand() * 8_000);
    try {
      const pool = await sky.ComputePool.start({
        provider,
        nodes: 1 + Math.floor(rand() * 2),
        console: "silent",
        provisionTimeout,
      });
      started++;
      try {
        assert.equal(await pool.run(echo(i)), i);
      } finally {
        await pool.close().catch(() => {});
      }
    } catch {
      failed++;
    }
    for (const [id, cluster] of provider.clusters) {
      clusters.push({ runtime, id, cluster });
    }
  }
  // What is left: worker processes of the local nodes, containers and
  // networks labelled with the clusters' ids, and the namespaces of
  // Podman's bridges.
  const processes = await localWorkers(localRoot);
  let containers = 0;
  let namespaces = 0;
  const netns = (await command("ip", ["netns", "list"])).split("\n")
    .map((l) => l.split(" ")[0]).filter(Boolean);
  for (const { runtime, id, cluster } of clusters) {
    if (runtime === "local") continue;
    const env: Record<string, string> = runtime === "docker"
      ? { DOCKER_HOST: docker.host! }
      : {};
    containers += (await command(runtime, [
      "ps",
      "-aq",
      "--filter",
      `label=skyward.cluster=${id}`,
    ], env)).split("\n").filter(Boolean).length;
    const bridge = (cluster as ContainerCluster | undefined)?.bridge?.name;
    if (bridge) namespaces += netns.filter((n) => n.startsWith(bridge)).length;
  }
  const netnsAfter = netns.length;
  console.log(
    `fault=random-start-close points=${runtimes.length} started=${started} failed=${failed} ` +
      `docker=${runtimes.filter((r) => r === "docker").length} podman=${
        runtimes.filter((r) => r === "podman").length
      } ` +
      `leaked_processes=${processes.length} leaked_containers=${containers} ` +
      `leaked_namespaces=${namespaces} netns_before=${netnsBefore} netns_after=${netnsAfter} seed=${seed}`,
  );
  assert.deepEqual({ processes, containers, namespaces }, {
    processes: [],
    containers: 0,
    namespaces: 0,
  });
});

/**
 * The provider conformance suite: the scenarios every provider must pass,
 * written once and run against each provider (and each cloud's fake) by
 * `tests/providers/<provider>_test.ts`:
 *
 * - **hello**: a 2-node pool; both nodes answer, `instanceInfo()` gives
 *   ranks 0 and 1 of 2 with the pool's job id, and the pool goes through
 *   every lifecycle event in order;
 * - **reclaim**: a node's machine taken back mid-run, the way its provider
 *   does it (a spot interruption in the fake, `docker kill`, the node's
 *   process or SSH sessions killed): its task is sent again, no task fails,
 *   the node comes back (on a replacement where the provider gives one) and
 *   the pool answers on both nodes;
 * - **task error**: a task's error that escapes the `await using` block
 *   still tears the pool down;
 * - **script error**: the user's script (a child process) throwing inside
 *   `await using` still tears the pool down and exits with the error;
 *
 * and after each: **nothing left** — no instance, pod, container, network,
 * key pair, SSH key, script or volume at the provider or its fake, no key
 * authorised on the hosts, no process of the pool on this machine or the
 * rig's hosts (their processes are this machine's, in network namespaces).
 *
 * What a provider can do is stated in {@linkcode CAPABILITIES}; a scenario
 * it cannot do is declared as an ignored test whose name says why.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as sky from "../../mod.ts";
import { assertLifecycle } from "../clouds.ts";
import { alive, eventually } from "../helpers.ts";
import {
  makeProvider,
  type ProviderKind,
  type ProviderRecipe,
  RECIPE_ENV,
} from "./recipes.ts";
import { fail, hello, info, nap } from "./user_script.ts";

/** A scenario of the suite. */
export type Scenario = "hello" | "reclaim" | "task error" | "script error";

/** How a machine is taken back, and what the pool does then. */
export type Reclaim =
  /** A new machine takes the node's place (`InstanceReplaced`). */
  | { by: string; outcome: "replaced" }
  /** The same machine gets a new worker (`NodeLost`, then `NodeReady`). */
  | { by: string; outcome: "restarted" }
  /** The provider has no way to take a machine back. */
  | { unsupported: string };

/** What a provider can do, as the suite checks it. */
export interface Capabilities {
  /** Whether its machines can be spot (interruptible) ones, or why not. */
  spot: true | string;
  /** How the suite takes a node's machine back mid-run. */
  reclaim: Reclaim;
  /**
   * `"private"`: each node sees every node's private address (`peers`,
   * `headAddr`); `"none"`: the provider has no network between machines,
   * the nodes run standalone (`peers` empty).
   */
  peers: "private" | "none";
  /**
   * What the provider makes for a pool and must remove (as listed by the
   * rig's `leftovers`), or `null` when it makes nothing but processes.
   */
  makes: string | null;
}

/** The table of capabilities, one row per provider. */
export const CAPABILITIES: Record<ProviderKind, Capabilities> = {
  local: {
    spot: "no market: the nodes are processes on this machine",
    reclaim: {
      by: "SIGKILL of the node's worker process",
      outcome: "restarted",
    },
    peers: "private",
    makes: null,
  },
  ssh: {
    spot: "no market: the hosts are the user's own",
    reclaim: {
      by: "the node's SSH sessions killed on its host",
      outcome: "restarted",
    },
    peers: "private",
    makes: null,
  },
  container: {
    spot: "no market: containers on the user's daemon",
    reclaim: {
      by: "the node's container killed (`docker kill`, `podman kill`)",
      outcome: "replaced",
    },
    peers: "private",
    makes: "containers and a network",
  },
  aws: {
    spot: true,
    reclaim: {
      by: "a spot interruption in the fake EC2",
      outcome: "replaced",
    },
    peers: "private",
    makes:
      "instances, a security group, a key pair, keys authorised on the hosts",
  },
  runpod: {
    spot: true,
    reclaim: { by: "a spot pod taken back by the fake", outcome: "replaced" },
    peers: "none",
    makes: "pods, keys authorised on the hosts",
  },
  vastai: {
    spot: true,
    reclaim: {
      by: "an interruptible instance outbid in the fake",
      outcome: "replaced",
    },
    peers: "none",
    makes: "instances, an SSH key, keys authorised on the hosts",
  },
  verda: {
    spot: true,
    reclaim: {
      by: "a spot instance discontinued by the fake",
      outcome: "replaced",
    },
    peers: "private",
    makes:
      "instances, an SSH key, a startup script, volumes, keys authorised on the hosts",
  },
};

/** One scenario's provider: fresh state (a fake of its own) and how to look into it. */
export interface RigSession extends AsyncDisposable {
  /** How to make the provider, here and in the user's script. */
  recipe: ProviderRecipe;
  /**
   * Takes the node's machine back, as the provider does (see
   * {@linkcode Reclaim}).
   *
   * @param node The node's `NodeReady` event: its instance and worker pid.
   * @param pool The pool's id.
   */
  takeBack?(node: sky.NodeReady, pool: string): Promise<void>;
  /**
   * What is left of the pool at the provider (or its fake) and on its hosts,
   * one line per resource; `[]` when nothing is.
   */
  leftovers(pool: string): Promise<string[]>;
  /** Checks of the provider's own, on the pool before it closes. */
  check?(
    scenario: Scenario,
    pool: sky.ComputePool,
    events: sky.PoolEvent[],
  ): void | Promise<void>;
}

/** A provider as the suite runs it. */
export interface ProviderRig {
  /** The provider as test names show it, e.g. `sky.AWS (fake EC2)`. */
  name: string;
  /** Its row of {@linkcode CAPABILITIES}. */
  kind: ProviderKind;
  /**
   * Why it cannot run here (its tests are ignored, the reason printed), or
   * `null`. Under `CI=true` the requirement (`requireRig`, `requireDocker`)
   * throws instead, so that a rig that cannot start fails the run.
   */
  unavailable: string | null;
  /** A fresh session for one scenario. */
  open(scenario: Scenario): Promise<RigSession>;
}

/** The pids of this machine's processes that belong to a pool (its id in their environment). */
export async function poolProcesses(id: string): Promise<string[]> {
  const found: string[] = [];
  const marker = `"jobId":"${id}"`;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name) || entry.name === String(Deno.pid)) continue;
    try {
      const environ = await Deno.readTextFile(`/proc/${entry.name}/environ`);
      if (!environ.includes(marker)) continue;
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      found.push(`pid ${entry.name}: ${cmdline.replaceAll("\0", " ").trim()}`);
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

/**
 * Asserts nothing of the pool is left: the provider's leftovers at once
 * (the pool's close has returned), its processes once they have exited.
 */
async function assertNothingLeft(session: RigSession, id: string) {
  assert.ok(id, "the pool never started");
  assert.deepEqual(await session.leftovers(id), [], `pool ${id} left these`);
  await eventually(
    async () => (await poolProcesses(id)).length === 0,
    30_000,
    `the processes of pool ${id} to exit`,
  ).catch(async () =>
    assert.deepEqual(await poolProcesses(id), [], `pool ${id}'s processes`)
  );
}

/**
 * Starts a 2-node pool on the session's provider, recording its events;
 * when that fails, the error lists the pool's last events.
 */
async function start(
  session: RigSession,
  events: sky.PoolEvent[],
): Promise<sky.ComputePool> {
  try {
    return await sky.ComputePool.start({
      provider: makeProvider(session.recipe),
      nodes: 2,
      console: "silent",
      ...session.recipe.pool,
      onEvent: (e) => events.push(e),
    });
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\nThe pool's last events:\n${
        events.slice(-40).map(sky.formatEvent).join("\n")
      }`,
      { cause: error },
    );
  }
}

/** Runs a scenario on a fresh session, which it closes. */
async function within(
  rig: ProviderRig,
  scenario: Scenario,
  fn: (session: RigSession) => Promise<void>,
): Promise<void> {
  await using session = await rig.open(scenario);
  await fn(session);
}

async function helloScenario(rig: ProviderRig, session: RigSession) {
  const events: sky.PoolEvent[] = [];
  let id = "";
  {
    await using pool = await start(session, events);
    id = pool.id;
    const infos = await pool.broadcast(info());
    assert.deepEqual(infos.map((i) => [i.node, i.totalNodes]), [[0, 2], [
      1,
      2,
    ]]);
    assert.deepEqual(infos.map((i) => i.isHead), [true, false]);
    assert.deepEqual(infos.map((i) => i.jobId), [id, id]);
    assert.deepEqual(
      await pool.broadcast(hello()),
      infos.map((i) => `Hello from ${i.hostname}!`),
    );
    if (CAPABILITIES[rig.kind].peers === "private") {
      assert.equal(infos[0].peers.length, 2, String(infos[0].peers));
      assert.deepEqual(infos[1].peers, infos[0].peers);
      assert.deepEqual(infos.map((i) => i.headAddr), [
        infos[0].peers[0],
        infos[0].peers[0],
      ]);
    } else {
      assert.deepEqual(infos.map((i) => i.peers), [[], []]);
      assert.deepEqual(infos.map((i) => i.headAddr), ["", ""]);
    }
    assert.deepEqual(await pool.run(sky.gather(nap(1), nap(2))), [1, 2]);
    // The leak checks see what the pool holds while it runs.
    assert.ok((await poolProcesses(id)).length >= 2, "no worker process seen");
    if (CAPABILITIES[rig.kind].makes) {
      assert.notDeepEqual(await session.leftovers(id), [], "nothing seen");
    }
    await session.check?.("hello", pool, events);
  }
  assertLifecycle(events);
  assertPriced(rig, events);
  // The cluster names the accelerator of the offer it was launched on.
  const wanted = session.recipe.pool?.accelerator;
  if (wanted) {
    const provisioned = events.find((e): e is sky.ClusterProvisioned =>
      e.type === "ClusterProvisioned"
    );
    assert.equal(provisioned?.accelerator, wanted);
  }
  await assertNothingLeft(session, id);
}

/**
 * Spend: a cloud's nodes carry the price of the offer they were launched
 * on, and the pool reports what they cost at close; local, SSH and
 * container machines cost nothing unless given a price (`pricePerHour`).
 */
function assertPriced(rig: ProviderRig, events: sky.PoolEvent[]) {
  const ready = events.filter((e): e is sky.NodeReady =>
    e.type === "NodeReady"
  );
  const destroyed = events.find((e): e is sky.ClusterDestroyed =>
    e.type === "ClusterDestroyed"
  );
  const prices = ready.map((e) => e.pricePerHour);
  if (CAPABILITIES[rig.kind].spot === true) {
    assert.ok(prices.every((p) => p !== undefined && p > 0), String(prices));
    assert.ok((destroyed?.cost ?? 0) > 0, `cost at close: ${destroyed?.cost}`);
  } else {
    assert.ok(prices.every((p) => !p), String(prices));
    assert.equal(destroyed?.cost, undefined);
  }
}

async function reclaimScenario(
  session: RigSession,
  reclaim: Exclude<Reclaim, { unsupported: string }>,
) {
  const events: sky.PoolEvent[] = [];
  let id = "";
  {
    await using pool = await start(session, events);
    id = pool.id;
    const victim = events.find((e): e is sky.NodeReady =>
      e.type === "NodeReady" && e.node === 1
    )!;
    const running = pool.run(sky.gather(nap(2_000), nap(2_000)));
    await eventually(
      () => events.filter((e) => e.type === "TaskStarted").length >= 2,
      30_000,
      "both tasks to start",
    );
    await session.takeBack!(victim, id);
    assert.deepEqual(await running, [2_000, 2_000]);
    const trail = () =>
      events.filter((e) => !e.type.startsWith("Task")).map(sky.formatEvent)
        .join("\n");
    // The task may be sent again to node 0 before node 1 is back.
    const back = (e: sky.PoolEvent) =>
      reclaim.outcome === "replaced"
        ? e.type === "InstanceReplaced"
        : e.type === "NodeReady" && e.node === 1 && e.pid !== victim.pid;
    await eventually(() => events.some(back), 180_000, "node 1 to come back")
      .catch((error) => {
        throw new Error(`${error.message}; the pool's events:\n${trail()}`);
      });
    assert.equal(
      events.filter((e) => e.type === "NodeReady" && e.node === 0).length,
      1,
      `node 0 was left alone:\n${trail()}`,
    );
    const starts = events.filter((e) => e.type === "TaskStarted");
    assert.ok(starts.length >= 3, `a task was sent again:\n${trail()}`);
    assert.deepEqual(events.filter((e) => e.type === "TaskFailed"), []);
    assert.ok(
      events.some((e) => e.type === "NodeLost" && e.node === 1),
      `node 1 lost:\n${trail()}`,
    );
    if (reclaim.outcome === "replaced") {
      const preempted = events.find((e) => e.type === "InstancePreempted");
      assert.deepEqual(preempted && [preempted.node, preempted.instance], [
        1,
        victim.instance,
      ], trail());
      const replaced = events.find((e) => e.type === "InstanceReplaced")!;
      assert.deepEqual([replaced.node, replaced.previous], [
        1,
        victim.instance,
      ]);
      assert.notEqual(replaced.instance, victim.instance);
    } else {
      const lost = events.filter((e) => e.type === "NodeLost");
      assert.deepEqual(lost.map((e) => e.node), [1], trail());
      assert.equal(await alive(victim.pid), false, "the old worker is alive");
      assert.deepEqual(
        events.filter((e) => e.type === "InstanceReplaced"),
        [],
        "restarted in place",
      );
    }
    const infos = await pool.broadcast(info());
    assert.deepEqual(infos.map((i) => [i.node, i.totalNodes]), [[0, 2], [
      1,
      2,
    ]]);
    assert.deepEqual(await pool.run(sky.gather(nap(1), nap(2))), [1, 2]);
    await session.check?.("reclaim", pool, events);
  }
  await assertNothingLeft(session, id);
}

async function taskErrorScenario(session: RigSession) {
  let id = "";
  await assert.rejects(
    async () => {
      await using pool = await start(session, []);
      id = pool.id;
      await pool.run(fail("flour"));
    },
    (error: Error) => {
      assert.ok(error instanceof sky.RemoteError, String(error));
      assert.equal(error.remoteName, "StockError");
      assert.match(error.message, /^StockError: flour is out of stock/);
      return true;
    },
  );
  await assertNothingLeft(session, id);
}

async function scriptErrorScenario(session: RigSession) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./user_script.ts", import.meta.url).pathname],
    env: {
      ...session.recipe.env,
      [RECIPE_ENV]: JSON.stringify(session.recipe),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.success, false, stdout + stderr);
  assert.match(stderr, /the user's script failed/);
  const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
  const id: string = lines[0]?.id;
  assert.deepEqual(
    lines[1]?.hello?.map((h: string) => /^Hello from \S+!$/.test(h)),
    [true, true],
    stdout + stderr,
  );
  await assertNothingLeft(session, id);
}

/**
 * Declares the suite's tests for a provider: one per scenario, each on a
 * session of its own, named `<rig name>: <what it shows>`.
 *
 * @param rig The provider, its fake and its hosts.
 */
export function conformance(rig: ProviderRig): void {
  const { reclaim } = CAPABILITIES[rig.kind];
  const test = (
    scenario: Scenario,
    what: string,
    fn: (session: RigSession) => Promise<void>,
  ) =>
    Deno.test({
      name: `${rig.name}: ${what}`,
      ignore: rig.unavailable !== null,
      fn: () => within(rig, scenario, fn),
    });
  test(
    "hello",
    "hello on 2 nodes: both answer as ranks 0 and 1, every lifecycle event in order, nothing left",
    (session) => helloScenario(rig, session),
  );
  if ("unsupported" in reclaim) {
    Deno.test({
      name:
        `${rig.name}: a machine taken back mid-run — not applicable: ${reclaim.unsupported}`,
      ignore: true,
      fn: () => {},
    });
  } else {
    test(
      "reclaim",
      `a machine taken back mid-run (${reclaim.by}): its task is retried, the node is ${reclaim.outcome}, the pool answers, nothing left`,
      (session) => reclaimScenario(session, reclaim),
    );
  }
  test(
    "task error",
    "a task error escaping `await using` still tears everything down",
    taskErrorScenario,
  );
  test(
    "script error",
    "the user's script throwing inside `await using` exits with the error and leaves nothing",
    scriptErrorScenario,
  );
}

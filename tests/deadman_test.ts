/**
 * The dead-man switch: workers whose client is killed, stopped or cut off
 * stop by themselves, and on machines that can power themselves off run the
 * provider's power-off command after the grace period (here a command that
 * writes a marker file, on the SSH rig's hosts), and at the pool's hard TTL.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { alive, eventually, tempRoot } from "./helpers.ts";
import { requireRig, RIG_DIR, type RigHost } from "./rig/rig.ts";
import { FaultyProvider } from "./faults.ts";
import { requireDocker } from "./rig/dockerd.ts";
import { nap } from "./fixtures/deadman_client.ts";

const client = new URL("./fixtures/deadman_client.ts", import.meta.url)
  .pathname;
const root = await tempRoot();
const { rig, reason } = await requireRig({ hosts: 1 });
if (!rig) console.warn(`deadman_test.ts: SSH tests ignored: ${reason}`);

const docker = await requireDocker();
if (docker.reason) {
  console.warn(`deadman_test.ts: Docker tests ignored: ${docker.reason}`);
}

interface Plan {
  provider: "local" | "docker" | string;
  dockerHost?: string;
  root?: string;
  nodes: number;
  powerOff?: string;
  deadManSwitch: sky.DeadManSwitchOptions;
}

/** Starts a client process; resolves once its workers are ready. */
async function startClient(plan: Plan) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", client, JSON.stringify(plan)],
    env: { XDG_CACHE_HOME: root },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      const stderr = await new Response(child.stderr).text();
      throw new Error(`the client exited before its pool was ready: ${stderr}`);
    }
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  child.stderr.cancel().catch(() => {});
  const { pids, id } = JSON.parse(text.split("\n")[0]) as {
    pids: number[];
    id: string;
  };
  return { child, pids, id };
}

async function stopClient(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await child.status;
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("workers outlive a long task while their client's heartbeat goes on, and stop once it goes silent", async () => {
  const { child, pids } = await startClient({
    provider: "local",
    root,
    nodes: 2,
    deadManSwitch: { heartbeatInterval: 200, missedHeartbeats: 5, grace: 0 },
  });
  try {
    assert.equal(pids.length, 2);
    // Three times the silence limit: only the heartbeat keeps them alive.
    await new Promise((r) => setTimeout(r, 3_000));
    for (const pid of pids) assert.ok(await alive(pid), `worker ${pid} died`);
    // A stopped client keeps its pipes open but says nothing.
    child.kill("SIGSTOP");
    for (const pid of pids) {
      await eventually(async () => !(await alive(pid)), 10_000, `${pid} gone`);
    }
  } finally {
    await stopClient(child);
  }
});

Deno.test("the pool's ttl closes it, failing the tasks still running", async () => {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root }),
    console: "silent",
    deadManSwitch: { ttl: 1_500 },
  });
  const pids = pool.workerPids;
  await assert.rejects(pool.run(nap(60_000)), sky.PoolClosedError);
  assert.ok(pool.closed);
  await pool.close();
  for (const pid of pids) assert.equal(await alive(pid!), false);
});

Deno.test("bad dead-man switch options are refused with the option's name", async () => {
  await assert.rejects(
    sky.ComputePool.start({
      provider: sky.Local({ root }),
      console: "silent",
      deadManSwitch: { heartbeatInterval: -5 },
    }),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /'deadManSwitch\.heartbeatInterval'/.test(error.message) &&
      /-5/.test(error.message),
  );
  await assert.rejects(
    sky.ComputePool.start({
      provider: sky.Local({ root }),
      console: "silent",
      deadManSwitch: { graceMs: 5 } as sky.DeadManSwitchOptions,
    }),
    /unknown option 'graceMs' \(did you mean 'grace'\?\) in 'deadManSwitch'/,
  );
});

function rigTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !rig, fn });
}

/**
 * When the marker says the machine was powered off, once it says it: the
 * shell creates the file before `date` has written to it.
 */
async function poweredOffAt(marker: string): Promise<number> {
  let at = NaN;
  await eventually(
    async () => {
      const text = await Deno.readTextFile(marker).catch(() => "");
      at = text.trim() ? Number(text.trim()) : NaN;
      return Number.isFinite(at);
    },
    20_000,
    "the power-off marker",
  );
  return at;
}

/** A power-off command for a rig host: it writes a marker file instead. */
function markerPlan(
  deadManSwitch: sky.DeadManSwitchOptions,
): { plan: Plan; marker: string } {
  // Each rig host has a /tmp of its own: the first host's is this directory.
  const name = `skyward-poweroff-${crypto.randomUUID()}`;
  const marker = `${RIG_DIR}/host0/tmp/${name}`;
  return {
    marker,
    plan: {
      provider: `${RIG_DIR}/hosts.json`,
      nodes: 1,
      powerOff: `date +%s%3N > /tmp/${name}`,
      deadManSwitch,
    },
  };
}

rigTest(
  "a worker whose client was killed powers its machine off after the grace period, not before",
  async () => {
    const { plan, marker } = markerPlan({
      heartbeatInterval: 200,
      missedHeartbeats: 5,
      grace: 4_000,
    });
    const { child, pids } = await startClient(plan);
    try {
      assert.ok(await alive(pids[0]));
      const killedAt = Date.now();
      await stopClient(child);
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal(await exists(marker), false, "powered off before the grace");
      const poweredAt = await poweredOffAt(marker);
      assert.ok(
        poweredAt - killedAt >= 4_000,
        `powered off ${poweredAt - killedAt} ms after the client died`,
      );
      await eventually(
        async () => !(await alive(pids[0])),
        5_000,
        "the worker",
      );
    } finally {
      await stopClient(child);
      await Deno.remove(marker).catch(() => {});
    }
  },
);

rigTest(
  "a worker whose client went silent (connection open) powers off after silence and grace",
  async () => {
    const { plan, marker } = markerPlan({
      heartbeatInterval: 200,
      missedHeartbeats: 5,
      grace: 2_000,
    });
    const { child, pids } = await startClient(plan);
    try {
      child.kill("SIGSTOP");
      const stoppedAt = Date.now();
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(await exists(marker), false, "powered off too early");
      assert.ok(await alive(pids[0]), "the worker is gone before its grace");
      const poweredAt = await poweredOffAt(marker);
      // Silence counts from the client's last heartbeat, which may have
      // left up to one heartbeat interval (200 ms) before it was stopped.
      assert.ok(
        poweredAt - stoppedAt >= 3_000 - 200,
        `powered off ${poweredAt - stoppedAt} ms after the client stopped`,
      );
      await eventually(
        async () => !(await alive(pids[0])),
        5_000,
        "the worker",
      );
    } finally {
      await stopClient(child);
      await Deno.remove(marker).catch(() => {});
    }
  },
);

rigTest(
  "at the pool's hard TTL a worker powers off without waiting out the heartbeat or the grace",
  async () => {
    const { plan, marker } = markerPlan({
      heartbeatInterval: 5_000,
      missedHeartbeats: 12,
      grace: 120_000,
      ttl: 8_000,
    });
    const { child, pids } = await startClient(plan);
    try {
      // Stopped, the client cannot close the pool at its TTL: the worker must.
      child.kill("SIGSTOP");
      const stoppedAt = Date.now();
      await eventually(() => exists(marker), 20_000, "the power-off marker");
      assert.ok(Date.now() - stoppedAt < 30_000);
      await eventually(
        async () => !(await alive(pids[0])),
        5_000,
        "the worker",
      );
    } finally {
      await stopClient(child);
      await Deno.remove(marker).catch(() => {});
    }
  },
);

rigTest(
  "a worker cut off from a live pool does not power off once the pool restarted a worker there",
  async () => {
    const hosts = rig!.hosts as RigHost[];
    const name = `skyward-poweroff-${crypto.randomUUID()}`;
    const marker = `${RIG_DIR}/host0/tmp/${name}`;
    const ready: number[] = [];
    const provider = new FaultyProvider(
      sky.SSH({
        hosts: [`${hosts[0].user}@${hosts[0].address}:${hosts[0].port}`],
        key: hosts[0].keyPath,
        knownHosts: `${RIG_DIR}/known_hosts`,
      }),
      { links: true, powerOffCommand: `touch /tmp/${name}` },
    );
    try {
      await using pool = await sky.ComputePool.start({
        provider,
        console: "silent",
        deadManSwitch: {
          heartbeatInterval: 200,
          missedHeartbeats: 5,
          grace: 3_000,
        },
        onEvent(event) {
          if (event.type === "NodeReady") ready.push(event.pid);
        },
      });
      assert.equal(await pool.run(nap(1)), 1);
      // The connection drops: the worker's input ends without a goodbye.
      for (const link of provider.links.values()) link.drop();
      await eventually(() => ready.length === 2, 20_000, "a restarted worker");
      await eventually(
        async () => !(await alive(ready[0])),
        10_000,
        "the old worker",
      );
      assert.equal(await exists(marker), false, "the machine was powered off");
      assert.equal(await pool.run(nap(1)), 1);
      await pool.close();
      // Closed with a goodbye: no power-off either.
      assert.equal(await exists(marker), false);
    } finally {
      await Deno.remove(marker).catch(() => {});
    }
  },
);

Deno.test({
  name:
    "a container whose client was killed powers itself off after the grace period and is removed",
  ignore: !!docker.reason,
  async fn() {
    const { child, id } = await startClient({
      provider: "docker",
      dockerHost: docker.host!,
      nodes: 1,
      deadManSwitch: {
        heartbeatInterval: 200,
        missedHeartbeats: 5,
        grace: 3_000,
      },
    });
    const containers = async () => {
      const out = await new Deno.Command("docker", {
        args: ["ps", "-aq", "--filter", `label=skyward.cluster=${id}`],
        env: { DOCKER_HOST: docker.host! },
        stdout: "piped",
        stderr: "null",
      }).output();
      return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
        .length;
    };
    try {
      assert.equal(await containers(), 1);
      await stopClient(child);
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(await containers(), 1, "stopped before the grace period");
      await eventually(
        async () => (await containers()) === 0,
        20_000,
        "the container to go",
      );
    } finally {
      await stopClient(child);
      await sky.Container({ binary: "docker", host: docker.host! }).cleanup({
        cluster: id,
      }).catch(() => {});
    }
  },
});

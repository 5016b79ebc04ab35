/**
 * Pools on real hosts over SSH: the rig's network-namespace hosts, each with
 * its own sshd, bootstrapped like cloud machines (tests/rig/rig.ts). Without
 * root or sshd these tests are ignored with the reason printed; under
 * `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  changeHostKey,
  requireRig,
  rigExec,
  type RigHost,
  startSshd,
  stopSshd,
} from "./rig/rig.ts";
import { rigTester } from "./clouds.ts";
import {
  connectTo,
  doubled,
  env,
  info,
  listenOnce,
  nap,
  same,
  square,
  whoami,
} from "./fixtures/cluster.ts";
import { hostNotSick } from "./fixtures/elastic.ts";
import { eventually, rigSsh } from "./helpers.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`ssh_pool_test.ts: SSH pool tests ignored: ${reason}`);

const rigTest = rigTester(rig);

const provider = rigSsh;

/** Established SSH connections into a host, counted inside its namespace. */
async function sshConnections(host: RigHost): Promise<number> {
  const out = await rigExec(host.index, [
    "ss",
    "-Htn",
    "state",
    "established",
    "sport",
    "=",
    ":22",
  ]);
  return out.split("\n").filter((l) => l.trim()).length;
}

rigTest("every dispatch kind works over 3 SSH hosts", async (hosts) => {
  await using pool = await sky.ComputePool.start({
    provider: provider(hosts),
    nodes: 3,
    console: "silent",
  });
  assert.equal(await pool.run(square(4)), 16);
  assert.deepEqual(
    await pool.run(sky.gather(square(1), square(2), square(3))),
    [1, 4, 9],
  );
  const [n, where] = await pool.run(sky.all(square(5), info()));
  assert.equal(n, 25);
  assert.equal(where.totalNodes, 3);
  const infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => i.node), [0, 1, 2]);
  assert.deepEqual(infos.map((i) => i.hostname), hosts.map((h) => h.name));
  assert.deepEqual(infos[0].peers, hosts.map((h) => h.address));
  assert.equal(infos[2].headAddr, hosts[0].address);
  assert.equal(await pool.submit(square(6)), 36);
  const streamed: number[] = [];
  for await (
    const r of pool.stream(sky.gather(square(7), square(8)), { ordered: false })
  ) {
    streamed.push(r);
  }
  assert.deepEqual(streamed.sort((a, b) => a - b), [49, 64]);
  assert.deepEqual(await pool.map(square, [1, 2, 3, 4, 5, 6]), [
    1,
    4,
    9,
    16,
    25,
    36,
  ]);
  const users = await pool.broadcast(whoami());
  assert.deepEqual(users.map((u) => u.user), hosts.map((h) => h.user));
});

rigTest(
  "streams flow both ways over SSH, beside a large value and small tasks",
  async (hosts) => {
    await using pool = await sky.ComputePool.start({
      provider: provider(hosts.slice(0, 1)),
      nodes: 1,
      worker: { concurrency: 2 },
      console: "silent",
    });
    async function* numbers() {
      for (let i = 0; i < 50_000; i++) yield i;
    }
    let count = 0;
    for await (const n of pool.run(doubled(numbers()))) {
      assert.equal(n, count * 2);
      count++;
    }
    assert.equal(count, 50_000);
    // A 64 MiB value in parts; small tasks pass between them.
    const big = new Uint8Array(64 * 1024 * 1024).fill(3);
    let inFlight = true;
    const echoed = pool.run(same(big)).finally(() => inFlight = false);
    let small = 0;
    while (inFlight) {
      assert.equal(await pool.run(square(3)), 9);
      small++;
    }
    const back = await echoed;
    assert.equal(back.length, big.length);
    assert.equal(back[big.length - 1], 3);
    assert.ok(small > 1, `${small} small tasks during the transfer`);
  },
);

rigTest(
  "a second pool on bootstrapped hosts skips every bootstrap phase",
  async (hosts) => {
    await (await sky.ComputePool.start({
      provider: provider(hosts),
      nodes: 3,
      console: "silent",
    }))
      .close();
    const phases: sky.BootstrapPhase[] = [];
    await using pool = await sky.ComputePool.start({
      provider: provider(hosts),
      nodes: 3,
      console: "silent",
      onEvent: (e) => e.type === "BootstrapPhase" && phases.push(e),
    });
    assert.equal(await pool.run(square(3)), 9);
    const ended = phases.filter((p) =>
      p.status !== "started" && p.phase !== "worker"
    );
    assert.ok(ended.length >= 3 * 4, JSON.stringify(ended));
    assert.deepEqual(
      ended.filter((p) => p.status !== "skipped").map((p) =>
        `${p.node}:${p.phase}:${p.status}`
      ),
      [],
    );
  },
);

rigTest("image env reaches tasks on SSH hosts", async (hosts) => {
  await using pool = await sky.ComputePool.start({
    provider: provider(hosts.slice(0, 1)),
    image: sky.Image({ env: { MODE: "prod" } }),
    console: "silent",
  });
  assert.equal(await pool.run(env("MODE")), "prod");
});

rigTest(
  "a node reaches a TCP port on another node at its peer address",
  async (hosts) => {
    await using pool = await sky.ComputePool.start({
      provider: provider(hosts.slice(0, 2)),
      nodes: 2,
      console: "silent",
    });
    const peers = (await pool.run(info())).peers;
    const port = 29600 + Math.floor(Math.random() * 300);
    const listening = pool.run(listenOnce(port), { node: 1 });
    const answer = await pool.run(connectTo(peers[1], port), { node: 0 });
    const heard = await listening;
    assert.equal(heard, "ping from node 0");
    assert.equal(answer, "pong");
  },
);

rigTest(
  "sshd killed mid-run and restarted: tasks complete, one connection per node after",
  async (hosts) => {
    await using pool = await sky.ComputePool.start({
      provider: provider(hosts.slice(0, 2)),
      nodes: 2,
      console: "silent",
    });
    const running = pool.run(
      sky.gather(nap(1500), nap(1500), nap(1500), nap(1500)),
    );
    await new Promise((r) => setTimeout(r, 300));
    await stopSshd(1);
    await new Promise((r) => setTimeout(r, 500));
    await startSshd(1);
    assert.deepEqual(await running, [1500, 1500, 1500, 1500]);
    assert.equal(await pool.run(square(9)), 81);
    assert.deepEqual(
      await pool.broadcast(info()).then((i) => i.map((x) => x.node)),
      [0, 1],
    );
    assert.equal(await sshConnections(hosts[0]), 1);
    assert.equal(await sshConnections(hosts[1]), 1);
  },
);

rigTest(
  "a host refusing authentication is a clear error naming it",
  async (hosts) => {
    const key = await Deno.makeTempFile();
    try {
      await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", key, "-y"],
      })
        .output();
      await Deno.remove(key);
      await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", key],
      }).output();
      const target = `${hosts[0].user}@${hosts[0].address}:${hosts[0].port}`;
      await assert.rejects(
        () =>
          sky.ComputePool.start({
            provider: provider(hosts.slice(0, 1), { key }),
            console: "silent",
          }),
        (error: Error) => {
          assert.ok(error instanceof sky.ProvisioningError, String(error));
          assert.ok(error.message.includes(target), error.message);
          assert.match(error.message, /auth/i);
          return true;
        },
      );
    } finally {
      await Deno.remove(key).catch(() => {});
      await Deno.remove(`${key}.pub`).catch(() => {});
    }
  },
);

rigTest("a host whose key changed is refused", async (hosts) => {
  const changed = await changeHostKey(2);
  try {
    await assert.rejects(
      () =>
        sky.ComputePool.start({
          provider: provider(hosts.slice(2, 3)),
          console: "silent",
        }),
      (error: Error) => {
        assert.match(error.message, /host key/i);
        assert.ok(error.message.includes(hosts[2].address), error.message);
        return true;
      },
    );
  } finally {
    await changed.restore();
  }
});

rigTest(
  "a node failing its health checks is replaced on another host, and every node sees its address",
  async (hosts) => {
    const [a, b, c] = hosts;
    const { stdout } = await new Deno.Command("getent", {
      args: ["passwd", b.user],
    }).output();
    const home = new TextDecoder().decode(stdout).split(":")[5];
    const marker = `${home}/skyward-sick`;
    const events: sky.PoolEvent[] = [];
    try {
      await using pool = await sky.ComputePool.start({
        provider: provider(hosts),
        nodes: 2,
        console: "silent",
        healthCheck: { fn: hostNotSick, interval: 200, failures: 2 },
        onEvent: (e) => events.push(e),
      });
      let infos = await pool.broadcast(info());
      assert.deepEqual(infos.map((i) => i.peers), [
        [a.address, b.address],
        [a.address, b.address],
      ]);
      await Deno.writeTextFile(marker, "");
      await eventually(
        () => events.some((e) => e.type === "InstanceReplaced"),
        60_000,
        "node 1 to be replaced",
      );
      const replaced = events.find((e) =>
        e.type === "InstanceReplaced"
      ) as sky.InstanceReplaced;
      assert.equal(replaced.node, 1);
      assert.equal(replaced.previous, `${b.user}@${b.address}:${b.port}`);
      assert.equal(replaced.instance, `${c.user}@${c.address}:${c.port}`);
      await eventually(() => pool.size === 2, 30_000, "2 ready nodes");
      infos = await pool.broadcast(info());
      assert.deepEqual(infos.map((i) => [i.node, i.totalNodes]), [[0, 2], [
        1,
        2,
      ]]);
      for (const i of infos) {
        assert.deepEqual(i.peers, [a.address, c.address]);
        assert.equal(i.headAddr, a.address);
      }
      const users = await pool.broadcast(whoami());
      assert.deepEqual(users.map((u) => u.user), [a.user, c.user]);
    } finally {
      await Deno.remove(marker).catch(() => {});
    }
  },
);

Deno.test({
  name: "the rig is released by the file that brought it up",
  ignore: !rig?.created,
  fn: () => rig!.release(),
});

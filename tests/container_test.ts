/**
 * Pools of containers (providers/container/mod.ts) on a Docker daemon: each
 * node a container with its own address on the pool's network, reached over
 * SSH and bootstrapped like a cloud machine. Needs a daemon and the base
 * image (`deno task docker:up`, `deno task image:build`); without them these
 * tests are ignored with the reason printed, and under `CI=true` that is a
 * failure instead. The scenarios every provider shares (hello on 2 nodes, a
 * container killed mid-run, errors that still tear down, nothing left) are
 * the conformance suite's: tests/providers/container_test.ts.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  type DockerRequirement,
  requireDocker,
  requirePodman,
} from "./rig/dockerd.ts";
import { connectTo, info, listenOnce, square } from "./fixtures/cluster.ts";
import { eventually } from "./helpers.ts";
import { containerCli, containerLeftovers } from "./clouds.ts";

type Binary = "docker" | "podman";

const runtimes: Record<Binary, DockerRequirement> = {
  docker: await requireDocker(),
  podman: await requirePodman(),
};
for (const [binary, found] of Object.entries(runtimes)) {
  if (!found.reason) continue;
  console.warn(`container_test.ts: ${binary} tests ignored: ${found.reason}`);
}

// The pools here keep their nodes' cache volumes (sky.Container's `cache`,
// on by default) as a user's would: the volumes are removed at the end,
// except one a container still uses (the daemon refuses those).
globalThis.addEventListener("unload", () => {
  for (const [binary, found] of Object.entries(runtimes)) {
    if (found.host === null) continue;
    const env: Record<string, string> = binary === "docker"
      ? { DOCKER_HOST: found.host }
      : {};
    const sync = (args: string[]) =>
      new TextDecoder().decode(
        new Deno.Command(binary, { args, env, stderr: "null" }).outputSync()
          .stdout,
      );
    const volumes = sync([
      "volume",
      "ls",
      "-q",
      "--filter",
      "name=skyward-cache-",
    ])
      .split("\n").filter((n) => /^skyward-cache-\d+$/.test(n));
    if (volumes.length > 0) sync(["volume", "rm", ...volumes]);
  }
});

/** The test's handle on one container CLI. */
interface Runtime {
  binary: Binary;
  /** The daemon, for Docker ("" for Podman, which has none). */
  host: string;
  /** Runs the CLI. */
  cli(...args: string[]): Promise<string>;
  /** The provider, on this daemon. */
  provider(options?: sky.ContainerOptions): sky.ContainerProvider;
  /** Names of the containers and networks that carry the cluster's label. */
  labelled(cluster: string): Promise<string[]>;
}

function runtime(binary: Binary, host: string): Runtime {
  const cli = (...args: string[]) => containerCli({ binary, host }, ...args);
  return {
    binary,
    host,
    cli,
    provider: (options = {}) =>
      sky.Container({
        binary,
        ...(binary === "docker" ? { host } : {}),
        ...options,
      }),
    labelled: (cluster) => containerLeftovers({ binary, host }, cluster),
  };
}

/**
 * Starts a pool of containers; when that fails, the error lists the pool's
 * last events, to tell where it stopped.
 */
async function start(
  rt: Runtime,
  options: Partial<sky.PoolOptions> = {},
): Promise<sky.ComputePool> {
  const events: string[] = [];
  try {
    return await sky.ComputePool.start({
      provider: rt.provider(),
      console: "silent",
      provisionTimeout: 180_000,
      ...options,
      onEvent: (e) => {
        events.push(sky.formatEvent(e));
        options.onEvent?.(e);
      },
    });
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\nThe pool's last events:\n${
        events.slice(-40).join("\n")
      }`,
      { cause: error },
    );
  }
}

/**
 * Removes a volume, waiting for the containers of a closed pool that still
 * use it to go (they run with `--rm`, which the daemon finishes on its own).
 */
async function removeVolume(rt: Runtime, volume: string): Promise<void> {
  await eventually(
    () => rt.cli("volume", "rm", "-f", volume).then(() => true, () => false),
    30_000,
    `the volume ${volume} to be removed`,
  );
}

/** Defines the test once per container CLI that can run it. */
function containerTest(
  name: string,
  fn: (rt: Runtime) => Promise<void>,
  only?: Binary,
): void {
  for (const binary of ["docker", "podman"] as const) {
    if (only && only !== binary) continue;
    const found = runtimes[binary];
    Deno.test({
      name: `${name} (${binary})`,
      ignore: found.host === null,
      fn: () => fn(runtime(binary, found.host!)),
    });
  }
}

containerTest("every dispatch kind works over 2 containers", async (rt) => {
  await using pool = await start(rt, {
    nodes: 2,
  });
  assert.equal(await pool.run(square(4)), 16);
  assert.deepEqual(
    await pool.run(sky.gather(square(1), square(2), square(3))),
    [1, 4, 9],
  );
  const [n, where] = await pool.run(sky.all(square(5), info()));
  assert.equal(n, 25);
  assert.equal(where.totalNodes, 2);
  const infos = await pool.broadcast(info());
  assert.deepEqual(infos.map((i) => i.node), [0, 1]);
  assert.deepEqual(
    infos.map((i) => i.hostname),
    [0, 1].map((i) => `skyward-${pool.id}-${i}`),
  );
  assert.equal(new Set(infos[0].peers).size, 2);
  assert.deepEqual(infos[1].peers, infos[0].peers);
  assert.equal(infos[1].headAddr, infos[0].peers[0]);
  assert.equal(infos[0].jobId, pool.id);
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
  assert.equal(await pool.run(square(9), { node: 1 }), 81);
});

containerTest(
  "a container reaches a TCP port on another at its peer address",
  async (rt) => {
    await using pool = await start(rt, {
      nodes: 2,
    });
    const peers = (await pool.run(info())).peers;
    const port = 29600 + Math.floor(Math.random() * 300);
    const listening = pool.run(listenOnce(port), { node: 1 });
    const answer = await pool.run(connectTo(peers[1], port), { node: 0 });
    assert.equal(await listening, "ping from node 0");
    assert.equal(answer, "pong");
  },
);

containerTest(
  "containers get the CPU and memory limits asked for",
  async (rt) => {
    await using pool = await start(rt, {
      provider: rt.provider({ cpus: 0.5, memory: "768m" }),
    });
    assert.equal(await pool.run(square(2)), 4);
    // The container's own cgroup, cgroup v2 or v1: "<quota> <period>" and bytes.
    const read = String.raw`
      if [ -f /sys/fs/cgroup/cpu.max ]; then
        cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max
      else
        echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes
      fi`;
    const [cpu, memory] =
      (await rt.cli("exec", `skyward-${pool.id}-0`, "sh", "-c", read))
        .trim().split("\n");
    const [quota, period] = cpu.split(" ").map(Number);
    assert.equal(quota / period, 0.5, cpu);
    assert.equal(Number(memory), 768 * 2 ** 20);
  },
);

containerTest(
  "cleanup({ cluster, dryRun }) lists a pool's containers and network and removes nothing; options it cannot honour are refused",
  async (rt) => {
    await using pool = await start(rt, { nodes: 1 });
    const dry = await rt.provider().cleanup({ cluster: pool.id, dryRun: true });
    assert.equal(dry.containers.length, 1);
    assert.equal(dry.networks.length, 1);
    assert.equal((await rt.labelled(pool.id)).length, 2);
    assert.equal(await pool.run(square(3)), 9);
    await assert.rejects(
      rt.provider().cleanup({ olderThan: 1 }),
      /--older-than is not supported for container/,
    );
    await assert.rejects(
      rt.provider().cleanup({ dryRun: true, caches: true }),
      /--dry-run is not supported for container/,
    );
  },
);

containerTest("what a killed client left is swept by cleanup()", async (rt) => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fixtures/container_script.ts", import.meta.url).pathname,
      "hang",
      rt.binary,
    ],
    env: rt.binary === "docker" ? { DOCKER_HOST: rt.host } : {},
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  if (!text.includes("\n")) {
    child.kill("SIGKILL");
    assert.fail(`the client script failed: ${await stderr}`);
  }
  const { id } = JSON.parse(text.split("\n")[0]) as { id: string };
  // A running client's containers are not swept.
  const early = await rt.provider().cleanup();
  assert.ok(
    !early.containers.some((c) => c.includes(id)),
    early.containers.join(" "),
  );
  const left = (await rt.labelled(id)).sort();
  assert.equal(left.length, 3, left.join(" "));
  assert.ok(
    left.includes(`skyward-${id}-0`) && left.includes(`skyward-${id}-1`),
  );
  child.kill("SIGKILL");
  await child.status;
  await stderr;
  const report = await rt.provider().cleanup();
  assert.deepEqual(
    [...report.containers, ...report.networks].filter((n) => left.includes(n))
      .sort(),
    left,
  );
  assert.deepEqual(await rt.labelled(id), []);
});

containerTest(
  "a container stops and is removed when its ttl is over",
  async (rt) => {
    const container = rt.provider({ ttl: 1_000 });
    const spec = {
      clusterId: `ttl-${Date.now().toString(36)}`,
      nodes: 1,
      allocation: "on-demand",
    } as const;
    const [offer] = await container.offers(spec);
    const cluster = await container.prepare(spec, offer);
    try {
      const [instance] = await container.provision(cluster, 1);
      assert.equal(instance.status, "running");
      await eventually(
        async () =>
          (await container.getInstance(cluster, instance.id)) === undefined,
        10_000,
        "the container to stop",
      );
    } finally {
      await container.teardown(cluster);
    }
    assert.deepEqual(await rt.labelled(spec.clusterId), []);
  },
);

containerTest("a given network is used and left in place", async (rt) => {
  const network = `skyward-test-net-${Date.now().toString(36)}`;
  await rt.cli("network", "create", network);
  try {
    const pool = await start(rt, {
      provider: rt.provider({ network }),
    });
    const names = await rt.cli(
      "network",
      "inspect",
      network,
      "--format",
      "{{range .Containers}}{{.Name}} {{end}}",
    );
    assert.match(names, new RegExp(`skyward-${pool.id}-0`));
    assert.equal(await pool.run(square(3)), 9);
    await pool.close();
    assert.deepEqual(await rt.labelled(pool.id), []);
    assert.equal(
      (await rt.cli("network", "ls", "-q", "--filter", `name=^${network}$`))
        .trim()
        .length > 0,
      true,
    );
  } finally {
    await rt.cli("network", "rm", network);
  }
}, "docker");

containerTest("a missing image is a clear error naming it", async (rt) => {
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: rt.provider({ image: "skyward-no-such-image:1" }),
        console: "silent",
      }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(error.message, /skyward-no-such-image:1 is missing/);
      return true;
    },
  );
});

Deno.test("sky.Container() checks its options", () => {
  assert.throws(() => sky.Container({ memory: "lots" }), sky.ConfigError);
  assert.throws(() => sky.Container({ cpus: -1 }), sky.ConfigError);
  assert.throws(
    () => sky.Container({ unknown: 1 } as unknown as sky.ContainerOptions),
    sky.ConfigError,
  );
  const provider = sky.Container({ cpus: 2, memory: "1g", ttl: 60_000 });
  assert.equal(provider.name, "container");
  assert.equal(provider.options.binary, "docker");
  assert.equal(provider.options.image, "skyward-base:bookworm-v1");
});

containerTest(
  "a second pool finds Deno, the code and the npm packages in the node's cache volume",
  async (rt) => {
    // A prefix of its own: its volume is this test's alone.
    const namePrefix = `skytest-cache-${Date.now().toString(36)}`;
    const volume = `${namePrefix}-cache-0`;
    const phases = async (cache: boolean) => {
      const seen: Record<string, string> = {};
      await using pool = await start(rt, {
        provider: rt.provider({ namePrefix, cache }),
        onEvent: (e) => {
          if (e.type === "BootstrapPhase" && e.status !== "started") {
            seen[e.phase] = e.status;
          }
        },
      });
      assert.equal(await pool.run(square(3)), 9);
      return seen;
    };
    try {
      const first = await phases(true);
      assert.equal(first.deno, "completed");
      assert.equal(first.code, "completed");
      assert.equal(first.deps, "completed");
      const second = await phases(true);
      assert.deepEqual(
        [second.env, second.deno, second.code, second.deps],
        ["skipped", "skipped", "skipped", "skipped"],
      );
      // Without the volume, the node starts empty again.
      const none = await phases(false);
      assert.equal(none.deno, "completed");
      const report = await rt.provider({ namePrefix }).cleanup({
        caches: true,
      });
      assert.deepEqual(report.volumes, [volume]);
      assert.equal(
        (await rt.cli("volume", "ls", "-q", "--filter", `name=${volume}`))
          .trim(),
        "",
      );
    } finally {
      await removeVolume(rt, volume);
    }
  },
);

containerTest(
  "a pool's containers keep the last 3 versions of the code in their cache volume, unless another container uses it",
  async (rt) => {
    const namePrefix = `skytest-prune-${Date.now().toString(36)}`;
    const volume = `${namePrefix}-cache-0`;
    // Podman needs them explicit here (the provider passes the same).
    const ulimits = [
      "--ulimit",
      "nofile=4096:4096",
      "--ulimit",
      "nproc=4096:4096",
    ];
    const codeIn = async (pool: sky.ComputePool) =>
      (await rt.cli(
        "exec",
        `${namePrefix}-${pool.id}-0`,
        "ls",
        "/home/sky/.cache/skyward/code",
      )).split("\n").filter(Boolean).sort();
    // Five versions from earlier pools, an hour apart, old1 the most recent.
    await rt.cli(
      "run",
      "--rm",
      "--network",
      "none",
      ...ulimits,
      "--volume",
      `${volume}:/c`,
      "skyward-base:bookworm-v1",
      "sh",
      "-c",
      'for i in 1 2 3 4 5; do mkdir -p /c/code/old$i && touch -d "$i hours ago" /c/code/old$i; done; chown -R 1000:1000 /c',
    );
    const holder = `${namePrefix}-holder`;
    try {
      // A container of another pool uses the volume: nothing is removed.
      await rt.cli(
        "run",
        "--detach",
        "--rm",
        "--network",
        "none",
        ...ulimits,
        "--name",
        holder,
        "--label",
        `skyward.cluster=${holder}`,
        "--volume",
        `${volume}:/c`,
        "skyward-base:bookworm-v1",
        "sleep",
        "300",
      );
      const old = ["old1", "old2", "old3", "old4", "old5"];
      let current: string;
      {
        await using pool = await start(rt, {
          provider: rt.provider({ namePrefix }),
        });
        assert.equal(await pool.run(square(2)), 4);
        const listed = await codeIn(pool);
        assert.deepEqual(listed.filter((n) => n.startsWith("old")), old);
        [current] = listed.filter((n) => !n.startsWith("old"));
        assert.ok(current, listed.join(" "));
      }
      await rt.cli("rm", "-f", holder);
      // Nothing uses it now: the 3 most recent stay (this code's among them).
      await using pool = await start(rt, {
        provider: rt.provider({ namePrefix }),
      });
      assert.equal(await pool.run(square(3)), 9);
      assert.deepEqual(await codeIn(pool), [current, "old1", "old2"].sort());
    } finally {
      await rt.cli("rm", "-f", holder).catch(() => {});
      await removeVolume(rt, volume);
    }
  },
);

/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.Container`,
 * with Docker (the private daemon of `deno task docker:up`, or the one
 * `DOCKER_HOST` names) and with Podman. Without a daemon, Podman or the
 * base image these tests are ignored with the reason printed; under
 * `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import {
  type ContainerCli,
  containerCli,
  containerLeftovers,
} from "../clouds.ts";
import { requireDocker, requirePodman } from "../rig/dockerd.ts";
import { conformance } from "./conformance.ts";
import { info } from "./user_script.ts";

for (
  const [binary, found] of [
    ["docker", await requireDocker()],
    ["podman", await requirePodman()],
  ] as const
) {
  if (found.reason) {
    console.warn(
      `providers/container_test.ts: ${binary} ignored: ${found.reason}`,
    );
  }
  const cli: ContainerCli = { binary, host: found.host ?? "" };
  conformance({
    name: `sky.Container (${binary})`,
    kind: "container",
    unavailable: found.reason,
    open: () =>
      Promise.resolve({
        recipe: {
          kind: "container",
          options: { binary, ...binary === "docker" ? { host: cli.host } : {} },
        },
        takeBack: async (node) => {
          await containerCli(cli, "kill", node.instance);
        },
        // The nodes' cache volumes (`cache`, on by default) are kept by
        // design, for the next pool; anything else is a leak.
        leftovers: (pool) => containerLeftovers(cli, pool),
        check: async (scenario, pool, events) => {
          const names = await containerLeftovers(cli, pool.id);
          // Two containers and the pool's network, all carrying its label.
          assert.equal(names.length, 3, names.join(" "));
          if (scenario !== "reclaim") return;
          const replaced = events.find((e) => e.type === "InstanceReplaced")!;
          assert.ok(!names.includes(replaced.previous), names.join(" "));
          assert.deepEqual(
            (await pool.broadcast(info())).map((i) => i.hostname),
            [`skyward-${pool.id}-0`, replaced.instance],
          );
        },
        [Symbol.asyncDispose]: () => Promise.resolve(),
      }),
  });
}

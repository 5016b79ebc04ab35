/**
 * The collections' pool suite (`suite.ts`) on `sky.Redis({ on: "head" })`
 * from 3 SSH hosts of the rig (tests/rig/rig.ts): the head host's worker
 * runs `redis-server` (Debian's, already installed on the rig's shared file
 * system, so the bootstrap's apt phase finds it) bound to its private
 * address; the other hosts and the client reach it there. When the pool
 * closes, the server is gone. Without the rig these tests are ignored with
 * the reason printed.
 */
import assert from "node:assert/strict";
import * as sky from "../../mod.ts";
import { requireRig } from "../rig/rig.ts";
import { releaseRigAtEnd } from "../clouds.ts";
import { eventually, rigSsh } from "../helpers.ts";
import { poolSuite } from "./suite.ts";
import { increment } from "./computes.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`collections redis_head_test.ts: ignored: ${reason}`);
const unavailable = rig ? undefined : reason;

/** The redis-server processes of a rig user. */
async function servers(user: string): Promise<string> {
  const out = await new Deno.Command("pgrep", {
    args: ["-u", user, "-a", "redis-server"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test({
  name: "no redis-server runs on the rig's head host before the suite",
  ignore: !rig,
  async fn() {
    assert.equal(await servers(rig!.hosts[0].user), "");
  },
});

Deno.test({
  name:
    "the head host runs the pool's redis-server on its private address while the pool is open",
  ignore: !rig,
  async fn() {
    const head = rig!.hosts[0];
    {
      await using pool = await sky.ComputePool.start({
        provider: rigSsh(rig!.hosts),
        nodes: 3,
        console: "silent",
        collections: sky.Redis({ on: "head" }),
      });
      await pool.broadcast(increment("n", 10, 1));
      assert.equal(await pool.counter("n").value(), 30);
      const running = await servers(head.user);
      assert.match(running, new RegExp(`redis-server ${head.address}:6390`));
      // Only the head runs one.
      assert.equal(await servers(rig!.hosts[1].user), "");
    }
  },
});

poolSuite({
  name: 'redis on: "head"',
  option: () => sky.Redis({ on: "head" }),
}, {
  name: "sky.SSH",
  unavailable,
  provider: () => rigSsh(rig!.hosts),
});

Deno.test({
  name: "the head host's redis-server is gone once the pool is closed",
  ignore: !rig,
  async fn() {
    await eventually(
      async () => (await servers(rig!.hosts[0].user)) === "",
      10_000,
      "the head's redis-server to stop",
    );
  },
});

releaseRigAtEnd(rig);

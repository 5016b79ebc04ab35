/**
 * A pool whose collections are on a real `redis-server`: tasks on two local
 * nodes and the client use the same collections, which live on the server
 * under the pool's prefix and are gone when the pool closes; a server the
 * pool cannot use fails `ComputePool.start` before any node is launched.
 */
import assert from "node:assert/strict";
import { Redis as IORedis } from "ioredis";
import * as sky from "../mod.ts";
import { append, increment } from "./collections/computes.ts";
import { tempRoot } from "./helpers.ts";
import { requireRedis } from "./rig/redis.ts";

const found = await requireRedis();
const ignore = found.redis === null;
if (found.reason) console.log(`Redis pool tests ignored: ${found.reason}`);
const url = found.redis?.server.url ?? "redis://127.0.0.1:1";

Deno.test({
  name:
    "tasks on 2 nodes and the client share a pool's collections on Redis, removed from the server at close",
  ignore,
  async fn() {
    const root = await tempRoot();
    const r = new IORedis(url, { protocol: 2 });
    r.on("error", () => {});
    try {
      let prefix = "";
      {
        await using pool = await sky.ComputePool.start({
          provider: sky.Local({ root }),
          nodes: 2,
          console: "silent",
          collections: sky.Redis({ url }),
        });
        prefix = `skyward:${pool.id}:`;
        await pool.run(
          sky.gather(increment("hits", 50, 4), increment("hits", 50, 4)),
        );
        assert.equal(await pool.counter("hits").value(), 100);
        assert.equal(await r.get(`${prefix}c:hits`), "100");
        // The nodes' workers reach the server themselves (not through the
        // client): each has its connection, named for the pool.
        const names = String(await r.client("LIST")).split("\n")
          .map((line) => /name=(\S*)/.exec(line)?.[1])
          .filter((name) => name?.startsWith(`skyward/${pool.id}/`));
        assert.equal(
          names.filter((n) => n === `skyward/${pool.id}/node`).length,
          2,
          names.join(" "),
        );
        assert.ok(names.includes(`skyward/${pool.id}/client`));
        await pool.run(
          sky.gather(append("log", "k", "a", 10), append("log", "k", "b", 10)),
        );
        const list = await pool.dict<string[]>("log").get("k");
        assert.equal(list?.length, 20);
        assert.equal(await r.type(`${prefix}d:log`), "hash");
      }
      assert.deepEqual(await r.keys(`${prefix}*`), []);
    } finally {
      r.disconnect();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "a pool on a Redis server that refuses its password fails to start with a ConfigError, before any node",
  ignore,
  async fn() {
    const root = await tempRoot();
    const events: string[] = [];
    try {
      await assert.rejects(
        sky.ComputePool.start({
          provider: sky.Local({ root }),
          nodes: 1,
          console: "silent",
          onEvent: (e) => events.push(e.type),
          collections: sky.Redis({
            url: `redis://:wrong@127.0.0.1:${found.redis!.server.port}`,
          }),
        }),
        (e: Error) => {
          assert.equal(e.name, "ConfigError");
          assert.match(e.message, /refused the credentials/);
          assert.doesNotMatch(e.message, /:wrong@/);
          return true;
        },
      );
      assert.ok(!events.includes("InstanceLaunched"), events.join(" "));
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "the Redis test server is released (pool tests)",
  ignore,
  async fn() {
    await found.redis?.release();
  },
});

Deno.test('sky.Redis({ on: "head" }) is refused on providers whose machines have no private network, before any machine', async () => {
  const events: string[] = [];
  for (
    const provider of [
      sky.RunPod({ apiKey: "test" }),
      sky.VastAI({ apiKey: "test" }),
    ]
  ) {
    await assert.rejects(
      sky.ComputePool.start({
        provider,
        nodes: 2,
        console: "silent",
        onEvent: (e) => events.push(e.type),
        collections: sky.Redis({ on: "head" }),
      }),
      (e: Error) => {
        assert.equal(e.name, "ConfigError");
        assert.match(e.message, /no private network/);
        assert.match(e.message, new RegExp(provider.name));
        return true;
      },
    );
  }
  assert.ok(!events.includes("InstanceLaunched"), events.join(" "));
});

Deno.test('sky.Redis({ on: "head" }) is refused for local processes, which cannot install redis-server, leaving no node', async () => {
  const root = await tempRoot();
  try {
    await assert.rejects(
      sky.ComputePool.start({
        provider: sky.Local({ root }),
        nodes: 1,
        console: "silent",
        collections: sky.Redis({ on: "head" }),
      }),
      (e: Error) => {
        assert.equal(e.name, "ConfigError");
        assert.match(e.message, /redis-server/);
        assert.match(e.message, /processes on this machine/);
        return true;
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

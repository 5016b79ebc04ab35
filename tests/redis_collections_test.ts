/**
 * The Redis collections backend on a real `redis-server` (Debian's, started
 * by `deno task redis:up` or by this file): what only Redis shows — the
 * structures it uses, binary-safe values, keys under the pool's prefix and
 * removed at close, a lost holder's lock released on the server, errors for
 * a bad URL, an unreachable server and a wrong password with no connection
 * left. The semantics every backend shares are the conformance suite's
 * (`tests/collections/`).
 */
import assert from "node:assert/strict";
import { Redis as IORedis } from "ioredis";
import type * as sky from "../mod.ts";
import type {
  CollectionBackend,
  CollectionCall,
} from "../src/collections/backend.ts";
import { Redis } from "../src/collections/redis.ts";
import { ConfigError, PoolClosedError } from "../src/errors.ts";
import { requireRedis } from "./rig/redis.ts";

const found = await requireRedis();
const ignore = found.redis === null;
if (found.reason) console.log(`Redis tests ignored: ${found.reason}`);
const url = found.redis?.server.url ?? "redis://127.0.0.1:1";

let pools = 0;
async function open(
  options: Partial<sky.RedisOptions> = {},
): Promise<{ backend: CollectionBackend; poolId: string }> {
  const poolId = `test-${Deno.pid}-${++pools}`;
  const backend = await Redis({ url, ...options }).open({ poolId });
  return { backend, poolId };
}

function raw(): IORedis {
  const r = new IORedis(url, { protocol: 2, lazyConnect: false });
  r.on("error", () => {});
  return r;
}

const bytes = (...b: number[]) => new Uint8Array(b);
const call = (b: CollectionBackend, c: CollectionCall, holder = "client") =>
  b.call(c, holder);

Deno.test({
  name:
    "each collection is Redis's own structure under the pool's prefix, removed when the pool closes",
  ignore,
  async fn() {
    const { backend, poolId } = await open();
    const r = raw();
    try {
      await call(backend, {
        kind: "dict",
        name: "d",
        op: "set",
        key: "k",
        value: bytes(0, 255, 0x0d, 0x0a),
      });
      await call(backend, {
        kind: "set",
        name: "s",
        op: "add",
        value: bytes(0, 1),
      });
      assert.equal(
        await call(backend, { kind: "counter", name: "c", op: "add", n: 5 }),
        5,
      );
      await call(backend, {
        kind: "queue",
        name: "q",
        op: "put",
        value: bytes(7),
      });
      const p = `skyward:${poolId}:`;
      assert.equal(await r.type(`${p}d:d`), "hash");
      assert.equal(await r.type(`${p}s:s`), "set");
      assert.equal(await r.type(`${p}q:q`), "list");
      assert.equal(await r.get(`${p}c:c`), "5");
      // Binary-safe: the bytes come back as they went in.
      assert.deepEqual(
        await call(backend, { kind: "dict", name: "d", op: "get", key: "k" }),
        bytes(0, 255, 0x0d, 0x0a),
      );
      await backend.close();
      assert.deepEqual(await r.keys(`${p}*`), []);
      await assert.rejects(
        call(backend, { kind: "counter", name: "c", op: "value" }),
        PoolClosedError,
      );
    } finally {
      await backend.close();
      r.disconnect();
    }
  },
});

Deno.test({
  name: "keep: true leaves the keys for a later pool with the same prefix",
  ignore,
  async fn() {
    const prefix = `kept-${Deno.pid}`;
    const first = await open({ prefix, keep: true });
    await call(first.backend, { kind: "counter", name: "c", op: "add", n: 3 });
    await first.backend.close();
    const second = await open({ prefix });
    try {
      assert.equal(
        await call(second.backend, { kind: "counter", name: "c", op: "value" }),
        3,
      );
    } finally {
      await second.backend.close();
    }
    const r = raw();
    assert.deepEqual(await r.keys(`${prefix}:*`), []);
    r.disconnect();
  },
});

Deno.test({
  name: "two pools on one server do not see each other's collections",
  ignore,
  async fn() {
    const a = await open();
    const b = await open();
    try {
      await call(a.backend, { kind: "counter", name: "n", op: "add", n: 1 });
      assert.equal(
        await call(b.backend, { kind: "counter", name: "n", op: "value" }),
        0,
      );
    } finally {
      await a.backend.close();
      await b.backend.close();
    }
  },
});

Deno.test({
  name:
    "a lock held by a forgotten node is released and its waiter gets it; a lease ends on the server",
  ignore,
  async fn() {
    const { backend } = await open();
    try {
      const held = await call(backend, {
        kind: "lock",
        name: "gpu",
        op: "acquire",
      }, "node-1") as { token: string };
      assert.ok(held.token);
      const waiting = call(backend, {
        kind: "lock",
        name: "gpu",
        op: "acquire",
        timeoutMs: 60_000,
      }, "node-2");
      await backend.forget("node-1");
      const next = await waiting as { token: string };
      assert.ok(next.token);
      assert.equal(
        await call(backend, {
          kind: "lock",
          name: "gpu",
          op: "release",
          token: held.token,
        }),
        false,
      );
      assert.equal(
        await call(backend, {
          kind: "lock",
          name: "gpu",
          op: "release",
          token: next.token,
        }),
        true,
      );
      // A lease: another holder gets the lock once it has run out.
      await call(backend, {
        kind: "lock",
        name: "lease",
        op: "acquire",
        leaseMs: 50,
      }, "node-3");
      const after = await call(backend, {
        kind: "lock",
        name: "lease",
        op: "acquire",
        timeoutMs: 60_000,
      }, "node-4") as { token: string };
      assert.ok(after.token);
    } finally {
      await backend.close();
    }
  },
});

Deno.test({
  name: "a blocked get ended by its signal puts back nothing and loses no item",
  ignore,
  async fn() {
    const { backend } = await open();
    try {
      const controller = new AbortController();
      const getting = backend.call(
        { kind: "queue", name: "q", op: "get" },
        "node-1",
        controller.signal,
      );
      controller.abort(new Error("stop"));
      await assert.rejects(getting, /stop/);
      await call(backend, {
        kind: "queue",
        name: "q",
        op: "put",
        value: bytes(1),
      });
      assert.deepEqual(
        await call(backend, { kind: "queue", name: "q", op: "get" }),
        { value: bytes(1) },
      );
      // A barrier arrival withdrawn by a forgotten holder is not counted.
      const lost = backend.call({
        kind: "barrier",
        name: "b",
        op: "wait",
        parties: 2,
      }, "node-1").catch((e) => e);
      await call(backend, { kind: "counter", name: "sync", op: "value" });
      await backend.forget("node-1");
      assert.match(String(await lost), /gone/);
      const one = call(backend, {
        kind: "barrier",
        name: "b",
        op: "wait",
        parties: 2,
      }, "node-2");
      const two = call(backend, {
        kind: "barrier",
        name: "b",
        op: "wait",
        parties: 2,
      }, "node-3");
      const indexes = (await Promise.all([one, two])).map((r) =>
        (r as { index: number }).index
      );
      assert.deepEqual(indexes.sort(), [0, 1]);
    } finally {
      await backend.close();
    }
  },
});

Deno.test({
  name:
    "a bad URL, an unreachable server and a wrong password are ConfigErrors that name the server, not its password",
  ignore,
  async fn() {
    assert.throws(() => Redis({ url: "http://x" }), /redis:\/\//);
    assert.throws(() => Redis({ url: "not a url" }), ConfigError);
    assert.throws(() => Redis({} as sky.RedisOptions), /either 'url'/);
    assert.throws(
      () => Redis({ url, port: 6390 }),
      /'port' is the head node's/,
    );
    assert.throws(
      () => Redis({ on: "head", keep: true }),
      /'keep' cannot keep anything/,
    );
    assert.throws(
      () => Redis({ url, prefx: "x" } as sky.RedisOptions),
      /prefix/,
    );
    const port = found.redis!.server.port;
    const wrong = Redis({ url: `redis://:not-the-password@127.0.0.1:${port}` });
    await assert.rejects(wrong.open({ poolId: "x" }), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /refused the credentials/);
      assert.match(e.message, /:\*\*\*@127\.0\.0\.1/);
      assert.doesNotMatch(e.message, /not-the-password/);
      return true;
    });
    // A closed port on loopback: refused at once.
    const closed = Redis({ url: "redis://127.0.0.1:1" });
    await assert.rejects(closed.open({ poolId: "x" }), /connection refused/);
    // A node that cannot reach the server says so, and why it must.
    const { openBackend } = await import(
      "../src/collections/redis_backend.ts"
    );
    await assert.rejects(
      openBackend({
        url: "redis://127.0.0.1:1",
        prefix: "x:",
        clearOnClose: false,
        connectTimeoutMs: 1_000,
        role: "node",
      }),
      /from node .* must be reachable from every node/,
    );
    // The test's resource sanitizer checks that no socket is left open.
  },
});

Deno.test({
  name: "the Redis test server is released",
  ignore,
  async fn() {
    await found.redis?.release();
  },
});

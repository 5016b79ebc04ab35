/**
 * The conformance suite of the collections, run against every backend:
 * {@linkcode semanticsSuite} checks each call's meaning on the backend
 * itself (fast, no pool), {@linkcode poolSuite} what only a pool shows —
 * tasks on several nodes, a node killed, a task retried. A backend's test
 * file calls both with its {@linkcode BackendUnderTest} (see
 * `embedded_test.ts`, `ssh_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import * as sky from "../../mod.ts";
import type {
  CollectionBackend,
  CollectionsOption,
} from "../../src/collections/backend.ts";
import { type Caller, clientCaller } from "../../src/collections/_context.ts";
import { Dict } from "../../src/collections/dict.ts";
import { SharedSet } from "../../src/collections/set.ts";
import { Counter } from "../../src/collections/counter.ts";
import { Queue } from "../../src/collections/queue.ts";
import { Barrier } from "../../src/collections/barrier.ts";
import { Lock } from "../../src/collections/lock.ts";
import { PAGE_ITEMS } from "../../src/collections/embedded.ts";
import type { Provider } from "../../src/provider.ts";
import {
  append,
  drain,
  holdLock,
  increment,
  meet,
  put,
  store,
  storeFunction,
  take,
} from "./computes.ts";

/** A backend the suite runs against. */
export interface BackendUnderTest {
  /** Its name in test names: `"embedded"`, `"redis"`. */
  name: string;
  /** The pool's `collections` option for it (`undefined`: the default). */
  option(): CollectionsOption | undefined;
  /** Why its tests are ignored here (a server missing), if they are. */
  unavailable?: string;
}

/** Where the pool suite runs. */
export interface ClusterUnderTest {
  /** Its name in test names: `"sky.Local"`, `"sky.SSH"`. */
  name: string;
  /** A provider of at least 3 nodes. */
  provider(): Provider<any> | Promise<Provider<any>>;
  /** Pool options the provider needs (e.g. RunPod's accelerator). */
  poolOptions?: Partial<sky.PoolOptions>;
  /** Ends what `provider()` started (a fake cloud), after the pool is closed. */
  close?(): Promise<void>;
  /** Why its tests are ignored here, if they are. */
  unavailable?: string;
}

/** Every kind of value the codec carries, to store and read back. */
export function everyCodecType(): Record<string, unknown> {
  return {
    nothing: null,
    missing: undefined,
    flags: [true, false],
    text: "héllo ☃",
    numbers: [0, -0, 1.5, NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER],
    big: 2n ** 100n,
    when: new Date(0),
    map: new Map<unknown, unknown>([[1, "one"], [{ k: 1 }, [2]]]),
    set: new Set(["a", 1]),
    bytes: new Uint8Array([1, 2, 3]),
    floats: new Float64Array([0.5, -1]),
    error: new RangeError("out of range"),
    nested: { list: [1, [2, [3]]], holes: [undefined, 1] },
  };
}

/** Opens a backend for one test, and the handles' caller as the client. */
async function open(
  backend: BackendUnderTest,
): Promise<{ backend: CollectionBackend; caller: Caller } & AsyncDisposable> {
  const option = backend.option() ?? (await import(
    "../../src/collections/embedded.ts"
  )).embedded();
  const opened = await option.open({
    poolId: `suite-${crypto.randomUUID().slice(0, 8)}`,
  });
  return {
    backend: opened,
    caller: clientCaller(opened),
    [Symbol.asyncDispose]: () => opened.close(),
  };
}

/**
 * The meaning of every call, on the backend itself (the client's caller,
 * and other holders as nodes would be).
 */
export function semanticsSuite(b: BackendUnderTest): void {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${b.name}: ${name}`,
      ignore: b.unavailable !== undefined,
      fn,
    });

  test("dict: get, set, has, delete and size", async () => {
    await using s = await open(b);
    const d = new Dict<number>("d", s.caller);
    assert.equal(await d.get("a"), undefined);
    assert.equal(await d.has("a"), false);
    await d.set("a", 1);
    await d.set("b", 2);
    assert.equal(await d.get("a"), 1);
    assert.equal(await d.has("a"), true);
    assert.equal(await d.size(), 2);
    assert.equal(await d.delete("a"), true);
    assert.equal(await d.delete("a"), false);
    assert.equal(await d.size(), 1);
    // Each kind has names of its own.
    assert.equal(await new Counter("d", s.caller).value(), 0);
    await assert.rejects(
      () => d.get(1 as unknown as string),
      /a dict's keys are strings/,
    );
  });

  test("dict: keys and entries list every key once, over several pages", async () => {
    await using s = await open(b);
    const d = new Dict<number>("many", s.caller);
    const n = PAGE_ITEMS * 2 + 7;
    await Promise.all(
      Array.from({ length: n }, (_, i) => d.set(`k${i}`, i)),
    );
    const keys: string[] = [];
    for await (const key of d.keys()) keys.push(key);
    assert.equal(keys.length, n);
    assert.equal(new Set(keys).size, n);
    let sum = 0;
    for await (const [key, value] of d.entries()) {
      assert.equal(key, `k${value}`);
      sum += value;
    }
    assert.equal(sum, (n * (n - 1)) / 2);
  });

  test("dict and set: large values are listed whole, over several pages", async () => {
    await using s = await open(b);
    const d = new Dict<Uint8Array>("big", s.caller);
    const set = new SharedSet<Uint8Array>("big", s.caller);
    const value = (i: number) => new Uint8Array(300_000).fill(i);
    for (let i = 0; i < 12; i++) {
      await d.set(`k${i}`, value(i));
      await set.add(value(i));
    }
    const seen: number[] = [];
    for await (const [key, v] of d.entries()) {
      assert.equal(v.length, 300_000);
      assert.equal(key, `k${v[0]}`);
      seen.push(v[0]);
    }
    assert.deepEqual(seen.sort((x, y) => x - y), [...Array(12).keys()]);
    let members = 0;
    for await (const v of set) members += v.length === 300_000 ? 1 : 0;
    assert.equal(members, 12);
  });

  test("dict: a key deleted and set again meanwhile makes a versioned write fail", async () => {
    await using s = await open(b);
    const call = (c: object) =>
      s.backend.call({ kind: "dict", name: "v", ...c } as never, "client");
    const one = new Uint8Array([1]);
    await call({ op: "set", key: "k", value: one });
    const read = await call({ op: "getVersioned", key: "k" }) as {
      version: number;
    };
    // The dict empties (the only key deleted), then the key is set again.
    await call({ op: "delete", key: "k" });
    await call({ op: "set", key: "k", value: new Uint8Array([2]) });
    assert.equal(
      await call({
        op: "setIfVersion",
        key: "k",
        version: read.version,
        value: new Uint8Array([3]),
      }),
      false,
    );
  });

  test("dict: update is atomic under contention", async () => {
    await using s = await open(b);
    const writers = Array.from(
      { length: 8 },
      () => new Dict<number>("hits", s.caller),
    );
    await Promise.all(
      writers.flatMap((d) =>
        Array.from({ length: 25 }, () =>
          d.update("n", async (n = 0) => {
            // Yield between the read and the write: the others come in.
            await new Promise((r) => setTimeout(r, 0));
            return n + 1;
          }))
      ),
    );
    assert.equal(await writers[0].get("n"), 200);
  });

  test("set: add says whether the member is new; membership is by encoded value", async () => {
    await using s = await open(b);
    const set = new SharedSet<unknown>("s", s.caller);
    assert.equal(await set.add(1), true);
    assert.equal(await set.add(1), false);
    assert.equal(await set.add(1n), true);
    assert.equal(await set.add({ a: 1, b: [2] }), true);
    assert.equal(await set.add({ a: 1, b: [2] }), false);
    assert.equal(await set.has({ a: 1, b: [2] }), true);
    assert.equal(await set.has(2), false);
    assert.equal(await set.size(), 3);
    assert.equal(await set.delete(1), true);
    assert.equal(await set.delete(1), false);
    const members: unknown[] = [];
    for await (const member of set) members.push(member);
    assert.deepEqual(members.sort(), [1n, { a: 1, b: [2] }].sort());
  });

  test("counter: add returns the new value; value and reset", async () => {
    await using s = await open(b);
    const c = new Counter("c", s.caller);
    assert.equal(await c.value(), 0);
    assert.equal(await c.add(), 1);
    assert.equal(await c.add(5), 6);
    assert.equal(await c.add(-2), 4);
    await Promise.all(Array.from({ length: 100 }, () => c.add(1)));
    assert.equal(await c.value(), 104);
    await c.reset();
    assert.equal(await c.value(), 0);
    await assert.rejects(() => c.add(0.5), RangeError);
  });

  test("queue: first in first out; tryGet and size", async () => {
    await using s = await open(b);
    const q = new Queue<number>("q", s.caller);
    assert.equal(await q.tryGet(), undefined);
    for (const i of [1, 2, 3]) await q.put(i);
    assert.equal(await q.size(), 3);
    assert.equal(await q.get(), 1);
    assert.equal(await q.tryGet(), 2);
    assert.equal(await q.get({ timeout: 0 }), 3);
    assert.equal(await q.size(), 0);
  });

  test("queue: get waits for a put; times out; stops on its signal", async () => {
    await using s = await open(b);
    const q = new Queue<string>("q", s.caller);
    const waiting = q.get();
    await q.put("x");
    assert.equal(await waiting, "x");
    await assert.rejects(
      () => q.get({ timeout: 50 }),
      (e: Error) => e.name === "TimeoutError",
    );
    const stop = new AbortController();
    const stopped = q.get({ signal: stop.signal });
    stop.abort(new Error("no more"));
    await assert.rejects(stopped, /no more/);
    // A getter that stopped waiting takes nothing.
    await q.put("y");
    assert.equal(await q.get({ timeout: 1_000 }), "y");
  });

  test("queue: close refuses puts, lets getters drain, then ends them", async () => {
    await using s = await open(b);
    const q = new Queue<number>("q", s.caller);
    const blocked = q.get();
    await q.close();
    await assert.rejects(blocked, sky.QueueClosedError);
    const r = new Queue<number>("r", s.caller);
    await r.put(1);
    await r.put(2);
    await r.close();
    await r.close();
    await assert.rejects(() => r.put(3), sky.QueueClosedError);
    const got: number[] = [];
    for await (const v of r) got.push(v);
    assert.deepEqual(got, [1, 2]);
    await assert.rejects(() => r.get(), sky.QueueClosedError);
    assert.equal(await r.tryGet(), undefined);
  });

  test("barrier: lets a round through once its parties wait, round after round", async () => {
    await using s = await open(b);
    const bar = () => new Barrier("b", 3, s.caller);
    for (let round = 0; round < 3; round++) {
      const places = await Promise.all([
        bar().wait(),
        bar().wait(),
        bar().wait(),
      ]);
      assert.deepEqual([...places].sort(), [0, 1, 2]);
    }
    await assert.rejects(
      () => Promise.all([bar().wait(), new Barrier("b", 2, s.caller).wait()]),
      RangeError,
    );
  });

  test("barrier: a waiter that times out withdraws", async () => {
    await using s = await open(b);
    const bar = () => new Barrier("b", 2, s.caller);
    await assert.rejects(
      () => bar().wait({ timeout: 50 }),
      (e: Error) => e.name === "TimeoutError",
    );
    // Had it stayed counted, the next waiter would pass alone.
    const first = bar().wait();
    const second = bar().wait();
    assert.deepEqual(await Promise.all([first, second]), [0, 1]);
  });

  test("barrier: a forgotten holder's arrival is withdrawn", async () => {
    await using s = await open(b);
    const ghost = s.backend.call(
      { kind: "barrier", name: "b", op: "wait", parties: 2 },
      "node-gone",
    );
    ghost.catch(() => {});
    await s.backend.forget("node-gone");
    await assert.rejects(ghost);
    const bar = () => new Barrier("b", 2, s.caller);
    assert.deepEqual(await Promise.all([bar().wait(), bar().wait()]), [0, 1]);
  });

  test("lock: exclusive, granted in turn; acquire times out", async () => {
    await using s = await open(b);
    const l = new Lock("l", s.caller);
    const first = await l.acquire();
    await assert.rejects(
      () => l.acquire({ timeout: 50 }),
      (e: Error) => e.name === "TimeoutError",
    );
    const order: number[] = [];
    const second = l.acquire().then((h) => (order.push(2), h));
    const third = l.acquire().then((h) => (order.push(3), h));
    assert.equal(await first.release(), true);
    assert.equal(await first.release(), true); // the same release, once
    await (await second).release();
    await (await third)[Symbol.asyncDispose]();
    assert.deepEqual(order, [2, 3]);
    const again = await l.acquire({ timeout: 0 });
    await again.release();
  });

  test("lock: released past its lease", async () => {
    await using s = await open(b);
    const l = new Lock("l", s.caller);
    const leased = await l.acquire({ lease: 100 });
    const next = await l.acquire({ timeout: 10_000 });
    assert.equal(await leased.release(), false);
    assert.equal(await next.release(), true);
  });

  test("lock: a forgotten holder's lock is released and its waits end", async () => {
    await using s = await open(b);
    const held = await s.backend.call(
      { kind: "lock", name: "l", op: "acquire" },
      "node-gone",
    ) as { token: string };
    assert.ok(held.token);
    const waiting = s.backend.call(
      { kind: "lock", name: "m", op: "acquire" },
      "node-gone",
    );
    const mine = new Lock("m", s.caller).acquire();
    const queued = s.backend.call(
      { kind: "lock", name: "m", op: "acquire", timeoutMs: 60_000 },
      "node-gone",
    );
    queued.catch(() => {});
    void waiting;
    await s.backend.forget("node-gone");
    await assert.rejects(queued);
    const l = await new Lock("l", s.caller).acquire({ timeout: 1_000 });
    await l.release();
    await (await mine).release();
  });

  test("values of every codec type come back as they were put", async () => {
    await using s = await open(b);
    const value = everyCodecType();
    const d = new Dict<unknown>("v", s.caller);
    await d.set("all", value);
    assert.deepStrictEqual(await d.get("all"), value);
    const q = new Queue<unknown>("v", s.caller);
    await q.put(value);
    assert.deepStrictEqual(await q.get(), value);
    // A value read is a copy.
    const bytes = new Dict<Uint8Array>("b", s.caller);
    await bytes.set("x", new Uint8Array([1]));
    (await bytes.get("x"))![0] = 9;
    assert.deepEqual(await bytes.get("x"), new Uint8Array([1]));
  });

  test("an unserialisable value is refused with the codec's SerializationError", async () => {
    await using s = await open(b);
    await assert.rejects(
      () => new Dict("d", s.caller).set("f", { run() {} }),
      (e: Error) =>
        e instanceof sky.SerializationError &&
        e.message === "Cannot send value.run: it is a function",
    );
    await assert.rejects(
      () => new Queue("q", s.caller).put(Symbol("s")),
      sky.SerializationError,
    );
  });

  test("bad arguments are refused with errors naming what to fix", async () => {
    await using s = await open(b);
    assert.throws(() => new Dict("", s.caller), /non-empty string/);
    assert.throws(() => new Barrier("b", 0, s.caller), /positive integer/);
    await assert.rejects(
      () => new Queue("q", s.caller).get({ timeout: -1 }),
      /'timeout' must be a number of milliseconds/,
    );
    await assert.rejects(
      () => new Lock("l", s.caller).acquire({ lease: Number.NaN }),
      /'lease' must be/,
    );
  });
}

/** Events to find a node's worker pid (to kill it), and to see it lost. */
function pids(): {
  onEvent(e: sky.PoolEvent): void;
  of(node: number): number;
  lost(node: number): Promise<void>;
} {
  const known: number[] = [];
  const waiting: { node: number; resolve(): void }[] = [];
  return {
    onEvent(e) {
      if (e.type === "NodeReady") known[e.node] = e.pid;
      if (e.type === "NodeLost") {
        for (const w of waiting.filter((w) => w.node === e.node)) w.resolve();
      }
    },
    of: (node) => known[node],
    lost: (node) =>
      new Promise<void>((resolve) => waiting.push({ node, resolve })),
  };
}

/**
 * What only a pool shows: tasks on 3 nodes and the client sharing
 * collections, a node killed, a task retried.
 */
export function poolSuite(b: BackendUnderTest, c: ClusterUnderTest): void {
  Deno.test({
    name:
      `${b.name} on ${c.name}: collections shared by the client and 3 nodes`,
    ignore: b.unavailable !== undefined || c.unavailable !== undefined,
    async fn(t) {
      const workers = pids();
      await using _closed = {
        [Symbol.asyncDispose]: () => c.close?.() ?? Promise.resolve(),
      };
      await using pool = await sky.ComputePool.start({
        ...c.poolOptions,
        provider: await c.provider(),
        nodes: 3,
        worker: { concurrency: 2 },
        console: "silent",
        onEvent: workers.onEvent,
        ...(b.option() ? { collections: b.option() } : {}),
      });

      await t.step(
        "a queue fed by the client is drained by 3 nodes while the client watches a counter",
        async () => {
          const drained = pool.run(
            sky.gather(...[0, 1, 2].map(() => drain("work", "done"))),
          );
          const work = pool.queue<number>("work");
          for (let i = 0; i < 30; i++) await work.put(i);
          await work.close();
          const lists = await drained;
          assert.deepEqual((lists.flat() as number[]).sort((x, y) => x - y), [
            ...Array(30).keys(),
          ]);
          assert.equal(await pool.counter("done").value(), 30);
        },
      );

      await t.step(
        "a blocking get on one node is woken by a put from another",
        async () => {
          const waiting = pool.run(take("handoff"), { node: 0 });
          await pool.run(put("handoff", "from node 1"), { node: 1 });
          assert.equal(await waiting, "from node 1");
        },
      );

      await t.step(
        "counter adds from every node and the client add up",
        async () => {
          await Promise.all([
            pool.broadcast(increment("sum", 200, 8)),
            ...Array.from({ length: 50 }, () => pool.counter("sum").add(1)),
          ]);
          assert.equal(await pool.counter("sum").value(), 650);
          // On the client, sky.counter(...) is the open pool's.
          assert.equal(await sky.counter("sum").value(), 650);
        },
      );

      await t.step(
        "update is atomic under contention from every node and the client",
        async () => {
          await Promise.all([
            pool.broadcast(append("lists", "all", "n", 15)),
            ...Array.from(
              { length: 15 },
              (_, i) =>
                pool.dict<string[]>("lists").update(
                  "all",
                  (l = []) => [...l, `c${i}`],
                ),
            ),
          ]);
          const list = (await pool.dict<string[]>("lists").get("all"))!;
          assert.equal(list.length, 60);
          assert.equal(new Set(list).size, 60 - 2 * 15); // n0..n14 thrice, c0..c14
        },
      );

      await t.step(
        "values of every codec type travel between tasks and the client",
        async () => {
          const value = everyCodecType();
          assert.deepStrictEqual(
            await pool.run(store("codec", "v", value)),
            value,
          );
          assert.deepStrictEqual(await pool.dict("codec").get("v"), value);
          await assert.rejects(
            () => pool.run(storeFunction("codec")),
            (e: Error) =>
              e instanceof sky.RemoteError &&
              e.remoteName === "SerializationError",
          );
        },
      );

      await t.step(
        "a barrier lets 3 nodes through together, round after round",
        async () => {
          for (let round = 0; round < 2; round++) {
            const met = await pool.broadcast(meet("rounds", 3));
            assert.deepEqual(met.map((m) => m.place).sort(), [0, 1, 2]);
          }
        },
      );

      await t.step(
        "a lock a task did not release is released when the task ends",
        async () => {
          assert.equal(
            await pool.run(holdLock("kept", "kept-said", 0), { node: 1 }),
            1,
          );
          const held = await pool.lock("kept").acquire({ timeout: 20_000 });
          await held.release();
        },
      );

      await t.step(
        "a lock is released when its holder's node is killed",
        async () => {
          const stop = new AbortController();
          const holding = pool.run(holdLock("gpu", "gpu-held"), {
            node: 2,
            signal: stop.signal,
          });
          holding.catch(() => {});
          assert.equal(
            await pool.queue("gpu-held").get({ timeout: 60_000 }),
            2,
          );
          // Asked before the kill: granted as soon as the node is found lost
          // (before a retry of the task could take it).
          const mine = pool.lock("gpu").acquire({ timeout: 60_000 });
          Deno.kill(workers.of(2), "SIGKILL");
          const held = await mine;
          assert.equal(await held.release(), true);
          stop.abort();
          await holding.catch(() => {});
        },
      );

      await t.step(
        "a barrier across 3 nodes survives a retried task",
        async () => {
          // Node 2's task arrives first; its worker is killed while it waits;
          // the task is retried and arrives again. Were its first arrival kept,
          // nodes 0 and 1 would pass with a ghost and the retry wait alone.
          const ghost = pool.run(meet("retried", 3, "arrived"), { node: 2 });
          assert.equal(await pool.queue("arrived").get({ timeout: 60_000 }), 2);
          // Let its arrival reach the barrier.
          await new Promise((r) => setTimeout(r, 300));
          const pid = workers.of(2);
          const lost = workers.lost(2);
          Deno.kill(pid, "SIGKILL");
          await lost;
          const others = pool.run(
            sky.gather(meet("retried", 3), meet("retried", 3)),
          );
          const all = [await ghost, ...await others];
          assert.deepEqual(all.map((m) => m.place).sort(), [0, 1, 2]);
          assert.notEqual(workers.of(2), pid); // the task ran again on a new worker
        },
      );
    },
  });
}

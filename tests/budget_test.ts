/**
 * Spend and budgets on whole pools of priced local nodes: a fake clock
 * (`useClock`) moves the time the spend is measured with, so hours of
 * spend take no waiting, while the nodes run for real.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { useClock } from "../src/pool/spend.ts";
import { nap, square } from "./fixtures/budget.ts";
import { FakeClock } from "./fixtures/fake_clock.ts";
import { alive, eventually, ofType, tempRoot } from "./helpers.ts";

const MINUTE = 60_000;

const root = await tempRoot();

function near(
  actual: number | undefined,
  expected: number,
  what: string,
  within = 1e-6,
) {
  assert.ok(
    actual !== undefined && Math.abs(actual - expected) < within,
    `${what}: expected ${expected}, got ${actual}`,
  );
}

/** Starts a pool on priced local nodes with a fake clock; the clock is put back at the end. */
async function priced(
  pricePerHour: number,
  options: Partial<sky.PoolOptions> = {},
) {
  const clock = new FakeClock();
  const restore = useClock(clock);
  const events: sky.PoolEvent[] = [];
  try {
    const pool = await sky.ComputePool.start({
      provider: sky.Local({ root, pricePerHour }),
      console: "silent",
      onEvent: (e) => events.push(e),
      ...options,
    });
    return { pool, events, clock, restore };
  } catch (error) {
    restore();
    throw error;
  }
}

/** Resolves once `count` tasks have started. */
function started(events: sky.PoolEvent[], count: number): Promise<void> {
  return eventually(
    () => ofType(events, "TaskStarted").length >= count,
    20_000,
    `${count} started task(s)`,
  );
}

Deno.test("a priced pool reports each node's price, its spend every interval, and the total at close", async () => {
  const { pool, events, clock, restore } = await priced(1.5, { nodes: 2 });
  try {
    assert.deepEqual(
      ofType(events, "NodeReady").map((e) => [e.pricePerHour, e.spot]),
      [[1.5, undefined], [1.5, undefined]],
    );
    assert.match(
      sky.formatEvent(ofType(events, "InstanceLaunched")[0]),
      /for node \d \(\$1\.50\/h\)$/,
    );
    clock.advance(30 * MINUTE);
    const costs = ofType(events, "Cost");
    assert.equal(costs.length, 30, "one Cost a minute");
    const last = costs.at(-1)!;
    near(last.spent, 1.5, "spent after half an hour on 2 nodes at $1.50/h");
    near(last.ratePerHour, 3, "rate");
    near(pool.spend.spent, 1.5, "pool.spend.spent");
    near(pool.spend.ratePerHour, 3, "pool.spend.ratePerHour");
    assert.equal(pool.spend.budget, undefined);
    assert.deepEqual(
      last.nodes.map((
        n,
      ) => [n.node, n.pricePerHour, Math.round(n.spent * 100)]),
      [[0, 1.5, 75], [1, 1.5, 75]],
    );
    assert.deepEqual(
      last.nodes.map((n) => n.instanceId).sort(),
      ofType(events, "NodeReady").map((e) => e.instance).sort(),
    );
    // A node released stops costing; the one left goes on.
    await pool.resize(1);
    clock.advance(30 * MINUTE);
    near(ofType(events, "Cost").at(-1)!.ratePerHour, 1.5, "rate with 1 node");
    await pool.close();
    const destroyed = ofType(events, "ClusterDestroyed")[0];
    near(destroyed.cost, 2.25, "cost: 2 nodes for 30 min, then 1 for 30 min");
    assert.match(sky.formatEvent(destroyed), /, cost \$2\.25$/);
  } finally {
    await pool.close();
    restore();
  }
});

Deno.test("a free local pool reports no Cost and no cost at close", async () => {
  const { pool, events, clock, restore } = await priced(0);
  try {
    clock.advance(10 * MINUTE);
    await pool.close();
    assert.equal(ofType(events, "Cost").length, 0);
    assert.equal(ofType(events, "ClusterDestroyed")[0].cost, undefined);
    assert.equal(ofType(events, "NodeReady")[0].pricePerHour, 0);
  } finally {
    await pool.close();
    restore();
  }
});

Deno.test("a pool whose first interval would pass maxCost is refused before anything is launched", async () => {
  const events: sky.PoolEvent[] = [];
  await assert.rejects(
    priced(60, {
      nodes: 2,
      budget: { maxCost: 1 },
      onEvent: (e) => events.push(e),
    }),
    (e: Error) => {
      assert.ok(
        e instanceof sky.BudgetExceededError,
        `${e.name}: ${e.message}`,
      );
      assert.match(e.message, /Cannot launch 2 machine\(s\) at \$60\.00\/h/);
      assert.match(e.message, /maxCost of \$1\.00/);
      return true;
    },
  );
  assert.deepEqual(
    events.filter((e) =>
      e.type.startsWith("Instance") || e.type === "ClusterProvisioned"
    ),
    [],
  );
});

Deno.test("at maxCost the pool warns, fails its running and queued tasks with BudgetExceededError, and releases everything", async () => {
  const { pool, events, clock, restore } = await priced(3, {
    budget: { maxCost: 1, warnAt: 0.5 },
  });
  try {
    const pids = pool.workerPids.filter((p): p is number => p !== undefined);
    assert.equal(pids.length, 1);
    assert.deepEqual(pool.spend.budget, { maxCost: 1, warnAt: 0.5 });
    const running = pool.run(nap(120_000));
    const queued = pool.run(square(3));
    await started(events, 1);
    clock.advance(10 * MINUTE);
    assert.equal(ofType(events, "BudgetWarning").length, 1);
    near(ofType(events, "BudgetWarning")[0].spent, 0.5, "spent at the warning");
    assert.equal(pool.closed, false);
    // $3/h reaches $1 at 20 min (plus a millisecond of rounding up). The
    // clock stands still from then on: the release costs no time here.
    clock.advance(10 * MINUTE + 1);
    for (const task of [running, queued]) {
      await assert.rejects(task, (e: Error) => {
        assert.ok(
          e instanceof sky.BudgetExceededError,
          `${e.name}: ${e.message}`,
        );
        assert.match(
          e.message,
          /spent \$1\.00, its budget's maxCost of \$1\.00/,
        );
        return true;
      });
    }
    await pool.close();
    assert.equal(pool.closed, true);
    assert.equal(ofType(events, "BudgetWarning").length, 1, "warned once");
    const over = ofType(events, "BudgetExceeded");
    assert.equal(over.length, 1);
    near(over[0].spent, 1, "spent at the cap");
    near(ofType(events, "ClusterDestroyed")[0].cost, 1, "cost at close", 1e-4);
    for (const pid of pids) {
      assert.equal(await alive(pid), false, `worker ${pid} left`);
    }
    await assert.rejects(pool.run(square(2)), sky.PoolClosedError);
  } finally {
    await pool.close();
    restore();
  }
});

Deno.test("an elastic pool that scales up into the cap is stopped there, every node released", async () => {
  const { pool, events, clock, restore } = await priced(6, {
    nodes: { desired: 1, min: 1, max: 3, cooldown: 0, idleTimeout: 600_000 },
    budget: { maxCost: 1 },
  });
  try {
    const tasks = [0, 1, 2].map(() => pool.run(nap(120_000)));
    await started(events, 3);
    assert.equal(pool.size, 3);
    assert.ok(ofType(events, "PoolResized").some((e) => e.reason === "queue"));
    const pids = pool.workerPids.filter((p): p is number => p !== undefined);
    assert.equal(pids.length, 3);
    // 3 nodes at $6/h: $0.80 (the default warnAt) at 2 min 40 s, $1 at 3 min 20 s.
    clock.advance(200_001);
    for (const task of tasks) {
      await assert.rejects(task, sky.BudgetExceededError);
    }
    await pool.close();
    near(ofType(events, "BudgetWarning")[0].spent, 0.8, "spent at the warning");
    assert.equal(ofType(events, "BudgetWarning")[0].warnAt, 0.8);
    near(ofType(events, "BudgetExceeded")[0].spent, 1, "spent at the cap");
    near(ofType(events, "ClusterDestroyed")[0].cost, 1, "cost at close", 1e-4);
    assert.equal(ofType(events, "Cost").length, 3);
    for (const pid of pids) {
      assert.equal(await alive(pid), false, `worker ${pid} left`);
    }
  } finally {
    await pool.close();
    restore();
  }
});

Deno.test("near its cap, an elastic pool does not scale up, and resize() is refused", async () => {
  const { pool, events, clock, restore } = await priced(6, {
    nodes: { desired: 1, min: 1, max: 3, cooldown: 0, idleTimeout: 600_000 },
    budget: { maxCost: 1 },
  });
  try {
    clock.advance(8.5 * MINUTE); // $0.85 spent; a minute more of one node: $0.95.
    assert.equal(ofType(events, "BudgetWarning").length, 1);
    const ran = await pool.run(
      sky.gather(...Array.from({ length: 4 }, () => nap(300))),
    );
    assert.deepEqual(ran, [0, 0, 0, 0]);
    assert.equal(ofType(events, "InstanceLaunched").length, 1);
    assert.deepEqual(ofType(events, "PoolResized"), []);
    const limited = ofType(events, "BudgetLimited");
    assert.equal(limited.length, 1, "reported once, not at every try");
    assert.equal(limited[0].allowed, 0);
    assert.ok(limited[0].wanted >= 1);
    assert.equal(limited[0].maxCost, 1);
    near(limited[0].spent, 0.85, "spent when held back");
    await assert.rejects(pool.resize(2), (e: Error) => {
      assert.ok(
        e instanceof sky.BudgetExceededError,
        `${e.name}: ${e.message}`,
      );
      assert.match(e.message, /Cannot launch 1 machine\(s\) at \$6\.00\/h/);
      return true;
    });
    assert.deepEqual(ofType(events, "PoolResized"), []);
    assert.equal(await pool.run(square(4)), 16, "the pool goes on");
  } finally {
    await pool.close();
    restore();
  }
});

Deno.test("a spec's own budget replaces the pool's, and a spec over it falls back to the next", async () => {
  const clock = new FakeClock();
  const restore = useClock(clock);
  const events: sky.PoolEvent[] = [];
  try {
    await using pool = await sky.ComputePool.start({
      specs: [
        sky.Spec({
          provider: sky.Local({ root, pricePerHour: 60 }),
          budget: { maxCost: 0.5 },
        }),
        sky.Spec({ provider: sky.Local({ root, pricePerHour: 0.6 }) }),
      ],
      selection: "first",
      budget: { maxCost: 5 },
      console: "silent",
      onEvent: (e) => events.push(e),
    });
    assert.deepEqual(
      ofType(events, "InstanceLaunched").map((e) => e.pricePerHour),
      [0.6],
    );
    assert.equal(await pool.run(square(5)), 25);
    // The pool's $5 applies to the second spec: $0.60/h reaches $4 (80%) in 6 h 40 min.
    clock.advance(400 * MINUTE);
    near(ofType(events, "BudgetWarning")[0]?.maxCost, 5, "the pool's budget");
    assert.deepEqual(pool.spend.budget, { maxCost: 5, warnAt: 4 });
  } finally {
    restore();
  }
});

Deno.test("a budget on machines without a price is refused before anything is launched", async () => {
  const events: sky.PoolEvent[] = [];
  await assert.rejects(
    sky.ComputePool.start({
      provider: sky.Local({ root }),
      budget: { maxCost: 10 },
      console: "silent",
      onEvent: (e) => events.push(e),
    }),
    (e: Error) => {
      assert.ok(e instanceof sky.ConfigError, `${e.name}: ${e.message}`);
      assert.match(e.message, /'budget' has no effect/);
      assert.match(e.message, /pricePerHour/);
      return true;
    },
  );
  assert.equal(ofType(events, "InstanceLaunched").length, 0);
});

Deno.test("a budget reached while the pool starts makes start() reject with BudgetExceededError, nothing left", async () => {
  const clock = new FakeClock();
  const restore = useClock(clock);
  const events: sky.PoolEvent[] = [];
  try {
    await assert.rejects(
      sky.ComputePool.start({
        provider: sky.Local({ root, pricePerHour: 3 }),
        nodes: 2,
        budget: { maxCost: 1 },
        console: "silent",
        onEvent: (e) => {
          events.push(e);
          // Both machines launched, the bring-up takes 10 minutes: 2
          // machines at $3/h reach $1 then.
          if (e.type === "InstanceLaunched" && e.node === 1) {
            clock.advance(10 * MINUTE + 1);
          }
        },
      }),
      (e: Error) => {
        assert.ok(
          e instanceof sky.BudgetExceededError,
          `${e.name}: ${e.message}`,
        );
        return true;
      },
    );
    near(ofType(events, "BudgetExceeded")[0]?.spent, 1, "spent at the cap");
    near(ofType(events, "ClusterDestroyed")[0]?.cost, 1, "cost", 1e-4);
    assert.equal(ofType(events, "NodeReady").length, 0);
    const pool = ofType(events, "ClusterProvisioned")[0].pool;
    await eventually(
      async () => (await jobProcesses(pool)) === 0,
      10_000,
      "the pool's processes to exit",
    );
  } finally {
    restore();
  }
});

/** How many of this machine's processes run for a pool (its id in their environment). */
async function jobProcesses(pool: string): Promise<number> {
  let found = 0;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name) || entry.name === String(Deno.pid)) continue;
    const environ = await Deno.readTextFile(`/proc/${entry.name}/environ`)
      .catch(() => "");
    if (environ.includes(`"jobId":"${pool}"`)) found++;
  }
  return found;
}

/**
 * The spend ledger, the budget guard and the options that set them, without
 * a pool: a fake clock moves time on.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { BudgetGuard, budgetSchema, checkPricing } from "../src/pool/budget.ts";
import { resolveOptions } from "../src/pool/options.ts";
import { machinePrice, reportCost, Spend } from "../src/pool/spend.ts";
import { type Candidate, priceFor } from "../src/spec.ts";
import { FakeClock } from "./fixtures/fake_clock.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function near(actual: number, expected: number, what = "value"): void {
  assert.ok(
    Math.abs(actual - expected) < 1e-6,
    `${what}: expected ${expected}, got ${actual}`,
  );
}

Deno.test("the ledger counts each machine from its launch to its release, at its price", () => {
  const clock = new FakeClock();
  const spend = new Spend(clock);
  spend.open("a", { pricePerHour: 2 });
  clock.advance(HOUR / 2);
  spend.open("b", { pricePerHour: 1, spot: true });
  spend.open("free", {});
  spend.place("b", 1);
  near(spend.ratePerHour(), 3, "rate with a and b");
  clock.advance(HOUR);
  spend.close(["a"]);
  // a: 1.5 h at $2; b: 1 h at $1.
  near(spend.spent(), 4, "spent");
  near(spend.ratePerHour(), 1, "rate with b");
  clock.advance(HOUR);
  near(spend.spent(), 5, "spent, a released");
  const report = spend.report();
  assert.equal(report.type, "Cost");
  near(report.spent, 5);
  assert.deepEqual(report.nodes, [
    { node: 1, instanceId: "b", pricePerHour: 1, spent: 2 },
  ]);
  assert.deepEqual(spend.priceOf("b"), { pricePerHour: 1, spot: true });
  assert.deepEqual(spend.priceOf("free"), {});
  spend.closeAll();
  near(spend.ratePerHour(), 0);
  near(spend.spent(), 5);
});

Deno.test("machines that cost nothing leave the ledger unpriced", () => {
  const spend = new Spend(new FakeClock());
  spend.open("a", { pricePerHour: 0 });
  spend.open("b", {});
  assert.equal(spend.priced, false);
  spend.open("c", { pricePerHour: 0.01 });
  assert.equal(spend.priced, true);
});

Deno.test("a machine's price is its offer's spot or on-demand price, as launched", () => {
  // The shape of an AWS offer from the price table (providers/aws/offers.ts).
  const offer = {
    provider: "aws",
    instanceType: "g4dn.xlarge",
    spotPrice: 0.21,
    onDemandPrice: 0.53,
  };
  assert.deepEqual(
    machinePrice(offer, priceFor(offer, "spot-if-available"), {
      spot: true,
    }),
    {
      pricePerHour: 0.21,
      spot: true,
    },
  );
  // spot-if-available that fell back to on-demand (AWS's toInstance says so).
  assert.deepEqual(
    machinePrice(offer, priceFor(offer, "spot-if-available"), {
      spot: false,
    }),
    {
      pricePerHour: 0.53,
      spot: false,
    },
  );
  assert.deepEqual(machinePrice(offer, priceFor(offer, "on-demand"), {}), {
    pricePerHour: 0.53,
  });
  assert.deepEqual(machinePrice(offer, priceFor(offer, "cheapest"), {}), {
    pricePerHour: 0.21,
  });
  // A price the provider stated for the machine (Vast.ai's bid) wins.
  assert.deepEqual(
    machinePrice(offer, 0.21, { spot: true, pricePerHour: 0.25 }),
    { pricePerHour: 0.25, spot: true },
  );
  // Your own hosts with a price: only an on-demand price, whatever the allocation.
  const host = { provider: "ssh", instanceType: "host", onDemandPrice: 0.4 };
  assert.deepEqual(machinePrice(host, priceFor(host, "spot"), {}), {
    pricePerHour: 0.4,
  });
  assert.deepEqual(
    machinePrice({ provider: "ssh", instanceType: "host" }, undefined, {}),
    {},
  );
});

Deno.test("Cost is reported every interval while the machines have a price, and stops", () => {
  const clock = new FakeClock();
  const spend = new Spend(clock);
  const costs: number[] = [];
  const stop = reportCost(spend, MINUTE, (e) => costs.push(e.spent));
  clock.advance(2 * MINUTE);
  assert.deepEqual(costs, [], "no Cost before any machine has a price");
  spend.open("a", { pricePerHour: 6 });
  clock.advance(3 * MINUTE);
  assert.deepEqual(costs.map((c) => Math.round(c * 100) / 100), [
    0.1,
    0.2,
    0.3,
  ]);
  stop();
  clock.advance(10 * MINUTE);
  assert.equal(costs.length, 3);
  assert.equal(clock.pending, 0);
});

function guarded(maxCost: number, warnAt: number, interval = MINUTE) {
  const clock = new FakeClock();
  const spend = new Spend(clock);
  const events: sky.PoolEvent[] = [];
  const exceeded: Error[] = [];
  const guard = new BudgetGuard({
    spend,
    interval,
    emit: (e) =>
      events.push({ ...e, time: clock.now(), pool: "p" } as sky.PoolEvent),
    exceeded: (error) => exceeded.push(error),
  });
  guard.use({ maxCost, warnAt });
  return { clock, spend, events, exceeded, guard };
}

Deno.test("the guard warns once past warnAt and stops the pool exactly at maxCost", () => {
  const { clock, spend, events, exceeded } = guarded(1, 0.5);
  spend.open("a", { pricePerHour: 6 });
  clock.advance(4 * MINUTE);
  assert.equal(events.length, 0, "$0.40 spent: nothing to say");
  clock.advance(MINUTE + 30_000);
  assert.deepEqual(events.map((e) => e.type), ["BudgetWarning"]);
  const warning = events[0] as sky.BudgetWarning;
  near(warning.spent, 0.5, "spent at the warning");
  assert.equal(warning.warnAt, 0.5);
  assert.equal(warning.maxCost, 1);
  // A second machine: the cap comes sooner, and exactly.
  spend.open("b", { pricePerHour: 6 });
  clock.advance(HOUR);
  assert.deepEqual(events.map((e) => e.type), [
    "BudgetWarning",
    "BudgetExceeded",
  ]);
  const over = events[1] as sky.BudgetExceeded;
  near(over.spent, 1, "spent at the cap");
  // Warned at 5 min; $0.55 at 5.5 min, then $12/h: $0.45 more in 2.25 min.
  const late = over.time - warning.time - 2.75 * MINUTE;
  assert.ok(late >= 0 && late <= 1, `stopped ${late} ms past the cap`);
  assert.equal(exceeded.length, 1);
  assert.ok(exceeded[0] instanceof sky.BudgetExceededError);
  assert.match(exceeded[0].message, /maxCost of \$1\.00/);
  assert.equal((exceeded[0] as sky.BudgetExceededError).maxCost, 1);
});

Deno.test("the guard refuses launches that would pass maxCost within the next interval", () => {
  const { clock, spend, guard } = guarded(1, 0.8);
  // $30/h for a minute is $0.50: two fit, three do not.
  assert.equal(guard.afford(5, 30), 2);
  guard.admit(2, 30);
  assert.throws(() => guard.admit(3, 30), (e: Error) => {
    assert.ok(e instanceof sky.BudgetExceededError);
    assert.match(e.message, /Cannot launch 3 machine\(s\) at \$30\.00\/h/);
    assert.match(e.message, /budget's maxCost of \$1\.00/);
    assert.match(e.message, /budget\.maxCost/);
    return true;
  });
  spend.open("a", { pricePerHour: 6 });
  clock.advance(8 * MINUTE); // $0.80 spent, $0.10 more within the minute.
  assert.equal(guard.afford(3, 6), 1);
  assert.equal(guard.afford(3, 0), 3, "free machines always fit");
  guard.use({ maxCost: 1, warnAt: 0.8 }, "specs[1].budget");
  assert.throws(
    () => guard.admit(3, 6),
    /Raise 'specs\[1\]\.budget\.maxCost'/,
  );
  guard.use(undefined);
  assert.equal(guard.afford(3, 1000), 3, "no budget, no limit");
});

Deno.test("the guard stops its timer with the pool", () => {
  const { clock, spend, guard, events } = guarded(1, 0.5);
  spend.open("a", { pricePerHour: 6 });
  assert.equal(clock.pending, 1);
  guard.stop();
  assert.equal(clock.pending, 0);
  clock.advance(HOUR);
  assert.equal(events.length, 0);
});

Deno.test("budget options are checked, warnAt defaulting to 80% of maxCost", () => {
  assert.deepEqual(budgetSchema.parse({ maxCost: 20 }), {
    maxCost: 20,
    warnAt: 16,
  });
  const options = resolveOptions({
    provider: sky.Local({ pricePerHour: 1 }),
    budget: { maxCost: 20, warnAt: 15 },
    costInterval: 10_000,
  });
  assert.deepEqual(options.budget, { maxCost: 20, warnAt: 15 });
  assert.equal(options.costInterval, 10_000);
  const refused: [unknown, RegExp][] = [
    [{ maxCost: 0 }, /'budget\.maxCost' must be >0 \(got 0\)/],
    [
      { maxCost: 10, warnAt: 12 },
      /'budget\.warnAt' must be at most maxCost \(10\) \(got 12\)/,
    ],
    [{ warnAt: 1 }, /'budget\.maxCost'/],
    [{ maxCost: 1, max: 2 }, /max/],
    [20, /'budget' must be an object \(got 20\)/],
  ];
  for (const [budget, message] of refused) {
    assert.throws(
      () => resolveOptions({ provider: sky.Local(), budget }),
      (e: Error) => {
        assert.ok(e instanceof sky.ConfigError, e.message);
        assert.match(e.message, message);
        return true;
      },
    );
  }
  assert.throws(
    () => resolveOptions({ provider: sky.Local(), costInterval: -5 }),
    /'costInterval' must be >0/,
  );
  assert.throws(
    () => sky.Spec({ provider: sky.Local(), budget: { maxCost: -1 } }),
    /Invalid sky\.Spec: 'budget\.maxCost'/,
  );
  assert.deepEqual(
    sky.Spec({ provider: sky.Local(), budget: { maxCost: 5 } }).budget,
    { maxCost: 5, warnAt: 4 },
  );
});

Deno.test("pricePerHour is checked by sky.Local, sky.SSH and sky.Container, and priced in their offers", async () => {
  for (const bad of [-1, Number.NaN, Infinity, "1"]) {
    assert.throws(
      () => sky.Local({ pricePerHour: bad as number }),
      /Invalid sky\.Local options: 'pricePerHour'/,
    );
    assert.throws(
      () => sky.SSH({ hosts: ["h"], user: "u", pricePerHour: bad as number }),
      /Invalid sky\.SSH options.*pricePerHour/s,
    );
    assert.throws(
      () => sky.Container({ pricePerHour: bad as number }),
      /Invalid sky\.Container options.*pricePerHour/s,
    );
  }
  const spec = { clusterId: "c", nodes: 1, allocation: "cheapest" as const };
  const prices = async (p: sky.Provider<any>) => {
    const [offer] = await p.offers(spec);
    return machinePrice(offer, undefined, {}).pricePerHour;
  };
  assert.equal(await prices(sky.Local({ pricePerHour: 0.25 })), 0.25);
  assert.equal(await prices(sky.Local()), 0);
  assert.equal(
    await prices(sky.SSH({ hosts: ["h"], user: "u", pricePerHour: 0.4 })),
    0.4,
  );
  assert.equal(await prices(sky.SSH({ hosts: ["h"], user: "u" })), undefined);
  assert.equal(await prices(sky.Container({ pricePerHour: 0.1 })), 0.1);
});

function candidate(
  provider: sky.Provider<any>,
  price: number | undefined,
  budgetOption?: string,
): Candidate {
  return {
    provider,
    spec: { clusterId: "c", nodes: 1, allocation: "cheapest" },
    nodes: 1,
    offer: { provider: provider.name, instanceType: "t", onDemandPrice: price },
    price,
    ...budgetOption && { budget: { maxCost: 1, warnAt: 0.8 }, budgetOption },
  };
}

Deno.test("a budget or costInterval where no offer has a price is refused, naming the option", () => {
  const local = sky.Local();
  assert.throws(
    () => checkPricing([candidate(local, 0, "budget")], false),
    (e: Error) => {
      assert.ok(e instanceof sky.ConfigError);
      assert.match(
        e.message,
        /'budget' has no effect: no offer of local has a price/,
      );
      assert.match(e.message, /sky\.Local\(\{ pricePerHour: 0\.5 \}\)/);
      return true;
    },
  );
  assert.throws(
    () =>
      checkPricing([
        candidate(local, 2, "budget"),
        candidate(local, undefined, "specs[1].budget"),
      ], false),
    /'specs\[1\]\.budget' has no effect/,
  );
  assert.throws(
    () => checkPricing([candidate(local, 0)], true),
    /'costInterval' has no effect/,
  );
  // One priced offer among those the pool's budget covers is enough.
  checkPricing(
    [candidate(local, 0, "budget"), candidate(local, 2, "budget")],
    true,
  );
  checkPricing([candidate(local, 0)], false);
});

Deno.test("spend events print with their figures", () => {
  const base = { time: 0, pool: "p" };
  assert.equal(
    sky.formatEvent({
      ...base,
      type: "ClusterDestroyed",
      elapsedMs: 1500,
      cost: 0.42,
    }),
    "[ClusterDestroyed] Cluster terminated (1.5s), cost $0.42",
  );
  assert.equal(
    sky.formatEvent({ ...base, type: "ClusterDestroyed", elapsedMs: 1500 }),
    "[ClusterDestroyed] Cluster terminated (1.5s)",
  );
  assert.equal(
    sky.formatEvent({
      ...base,
      type: "InstanceLaunched",
      node: 0,
      instance: "i-1",
      pricePerHour: 0.21,
      spot: true,
    }),
    "[InstanceLaunched] Launching instance i-1 for node 0 ($0.21/h, spot)",
  );
  assert.equal(
    sky.formatEvent({
      ...base,
      type: "InstanceLaunched",
      node: 0,
      instance: "local-1",
      pricePerHour: 0,
    }),
    "[InstanceLaunched] Launching instance local-1 for node 0",
  );
  assert.equal(
    sky.formatEvent({
      ...base,
      type: "Cost",
      spent: 1.234,
      ratePerHour: 0.0042,
      nodes: [{ node: 0, instanceId: "i", pricePerHour: 0.0042, spent: 1.234 }],
    }),
    "[Cost] $1.23 spent, $0.0042/h now (1 machine(s))",
  );
  assert.equal(
    sky.formatEvent({
      ...base,
      type: "BudgetWarning",
      spent: 15.01,
      warnAt: 15,
      maxCost: 20,
    }),
    "[BudgetWarning] Spent $15.01 of the $20.00 budget (warning at $15.00)",
  );
  assert.equal(
    sky.formatEvent({
      ...base,
      type: "BudgetExceeded",
      spent: 20,
      maxCost: 20,
    }),
    "[BudgetExceeded] Spent $20.00, the budget's maxCost of $20.00: failing the tasks and closing the pool",
  );
});

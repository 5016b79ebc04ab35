import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import type { Offer, Provider } from "../src/provider.ts";
import { square } from "./fixtures/computes.ts";
import { tempRoot } from "./helpers.ts";

/** What a priced provider was asked to do, for assertions. */
interface Calls {
  prepared: number;
  tornDown: number;
  launched: number;
}

/**
 * A local provider that quotes prices, so that ranking can be tested with
 * real nodes: offers as `name` at the given prices, optionally failing at
 * prepare or provision.
 */
function priced(
  name: string,
  root: string,
  prices: { spot?: number; onDemand?: number },
  fail?: "prepare" | "provision" | "credentials",
): Provider<any> & { calls: Calls } {
  const inner = sky.Local({ root: `${root}/${name}` });
  const calls: Calls = { prepared: 0, tornDown: 0, launched: 0 };
  return {
    ...inner,
    name,
    calls,
    async offers(spec) {
      const offers = await inner.offers(spec);
      return offers.map((o): Offer => ({
        ...o,
        provider: name,
        instanceType: `${name}.small`,
        spotPrice: prices.spot,
        onDemandPrice: prices.onDemand,
      }));
    },
    async prepare(spec, offer) {
      if (fail === "credentials") {
        throw new sky.ConfigError(
          `${name} refused the credentials: set ${name.toUpperCase()}_KEY`,
        );
      }
      // A provider cleans up after its own failed prepare: there is no
      // cluster record to tear down.
      if (fail === "prepare") {
        throw new sky.ProvisioningError(`${name} has no capacity`);
      }
      calls.prepared++;
      return await inner.prepare(spec, offer);
    },
    async provision(cluster, count) {
      if (fail === "provision") {
        throw new sky.NoOffersError(`${name}: no machines left in the region`);
      }
      const instances = await inner.provision(cluster, count);
      calls.launched += instances.length;
      return instances;
    },
    async teardown(cluster) {
      calls.tornDown++;
      await inner.teardown(cluster);
    },
  };
}

Deno.test("selection 'cheapest' provisions the cheaper spec, 'first' the first", async () => {
  const root = await tempRoot();
  const dear = priced("dear", root, { onDemand: 3 });
  const cheap = priced("cheap", root, { onDemand: 1 });
  const specs = [sky.Spec({ provider: dear }), sky.Spec({ provider: cheap })];
  {
    await using pool = await sky.ComputePool.start({
      specs,
      console: "silent",
      allocation: "on-demand",
    });
    assert.equal(pool.provider.name, "cheap");
    assert.equal(await pool.run(square(3)), 9);
  }
  assert.equal(dear.calls.prepared, 0);
  {
    await using pool = await sky.ComputePool.start({
      specs,
      selection: "first",
      console: "silent",
    });
    assert.equal(pool.provider.name, "dear");
  }
  assert.equal(dear.calls.prepared, 1);
  assert.equal(dear.calls.tornDown, 1);
});

Deno.test("the price that counts is the allocation's: spot for spot, on-demand for on-demand", async () => {
  const root = await tempRoot();
  // a: cheap on demand, dear on spot; b: the other way round.
  const a = priced("a", root, { spot: 0.9, onDemand: 1 });
  const b = priced("b", root, { spot: 0.2, onDemand: 2 });
  const started = async (allocation: "spot" | "on-demand" | "cheapest") => {
    await using pool = await sky.ComputePool.start({
      specs: [sky.Spec({ provider: a }), sky.Spec({ provider: b })],
      allocation,
      console: "silent",
    });
    return pool.provider.name;
  };
  assert.equal(await started("spot"), "b");
  assert.equal(await started("on-demand"), "a");
  assert.equal(await started("cheapest"), "b");
});

Deno.test("a spec's own options override the pool's: nodes and allocation", async () => {
  const root = await tempRoot();
  const a = priced("a", root, { spot: 0.5, onDemand: 1 });
  const b = priced("b", root, { onDemand: 0.8 });
  await using pool = await sky.ComputePool.start({
    specs: [
      sky.Spec({ provider: a, allocation: "on-demand", nodes: 1 }),
      sky.Spec({ provider: b, nodes: 2 }),
    ],
    allocation: "spot",
    nodes: 3,
    console: "silent",
  });
  // a on demand costs $1, b (spot, as the pool says) has no spot price: a
  // priced offer wins over an unpriced one.
  assert.equal(pool.provider.name, "a");
  assert.equal(pool.size, 1);
});

Deno.test("a failing first offer falls back to the next and leaves nothing behind", async () => {
  const root = await tempRoot();
  const events: sky.PoolEvent[] = [];
  const broken = priced("broken", root, { onDemand: 0.5 }, "provision");
  const refusing = priced("refusing", root, { onDemand: 0.6 }, "credentials");
  const working = priced("working", root, { onDemand: 2 });
  {
    await using pool = await sky.ComputePool.start({
      specs: [
        sky.Spec({ provider: working }),
        sky.Spec({ provider: broken }),
        sky.Spec({ provider: refusing }),
      ],
      nodes: 2,
      console: "silent",
      onEvent: (e) => events.push(e),
    });
    assert.equal(pool.provider.name, "working");
    assert.deepEqual(await pool.broadcast(square(2)), [4, 4]);
  }
  assert.equal(broken.calls.prepared, 1);
  assert.equal(
    broken.calls.tornDown,
    1,
    "the failed offer's cluster is torn down",
  );
  assert.equal(broken.calls.launched, 0);
  assert.equal(refusing.calls.prepared, 0);
  assert.deepEqual(
    events.filter((e) => e.type === "ClusterProvisioned").map((e) =>
      (e as { provider: string }).provider
    ),
    ["broken", "working"],
  );
});

Deno.test("when every offer fails, the error lists each provider's reason", async () => {
  const root = await tempRoot();
  const a = priced("a", root, { onDemand: 1 }, "prepare");
  const b = priced("b", root, { onDemand: 2 }, "provision");
  await assert.rejects(
    sky.ComputePool.start({
      specs: [sky.Spec({ provider: a }), sky.Spec({ provider: b })],
      console: "silent",
    }),
    (error: Error) => {
      assert.ok(error instanceof sky.ProvisioningError, String(error));
      assert.match(error.message, /none of 2 offer\(s\) could be launched/);
      assert.match(error.message, /a a\.small \(local\): a has no capacity/);
      assert.match(
        error.message,
        /b b\.small \(local\): b: no machines left/,
      );
      return true;
    },
  );
  assert.equal(a.calls.prepared + a.calls.tornDown, 0);
  assert.equal(b.calls.prepared, 1);
  assert.equal(b.calls.tornDown, 1, "what b prepared is torn down");
});

Deno.test("maxHourlyCost leaves out dear offers, and says so when none is left", async () => {
  const root = await tempRoot();
  const a = priced("a", root, { onDemand: 3 });
  const b = priced("b", root, { onDemand: 2.5 });
  await assert.rejects(
    sky.ComputePool.start({
      specs: [sky.Spec({ provider: a }), sky.Spec({ provider: b })],
      allocation: "on-demand",
      maxHourlyCost: 2,
      console: "silent",
    }),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No offers for machines without accelerators from a, b at most \$2\/h/,
      );
      assert.match(error.message, /the cheapest is b b\.small at \$2\.5\/h/);
      return true;
    },
  );
  assert.equal(a.calls.prepared + b.calls.prepared, 0);
  // Under the cap, the dearer offer that fits is taken.
  await using pool = await sky.ComputePool.start({
    specs: [
      sky.Spec({ provider: a }),
      sky.Spec({ provider: b, maxHourlyCost: 2.6 }),
    ],
    allocation: "on-demand",
    maxHourlyCost: 2,
    console: "silent",
  });
  assert.equal(pool.provider.name, "b");
});

Deno.test("NoOffersError names the accelerator and why each provider had none", async () => {
  const root = await tempRoot();
  await assert.rejects(
    sky.ComputePool.start({
      specs: [
        sky.Spec({ provider: sky.Local({ root }), accelerator: "H100:8" }),
        sky.Spec({
          provider: priced("x", root, {}),
          accelerator: sky.accelerators.T4(),
        }),
      ],
      console: "silent",
    }),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(error.message, /^No offers for H100 × 8, T4 from local, x/);
      assert.match(error.message, /local: .*accelerator/i);
      return true;
    },
  );
});

Deno.test("bad specs and pool options get a clear ConfigError", async () => {
  assert.throws(
    () => sky.Spec({ provider: sky.Local(), maxHourlyCost: -1 }),
    (e: Error) =>
      e instanceof sky.ConfigError && /'maxHourlyCost'/.test(e.message),
  );
  assert.throws(
    () => sky.Spec({ provider: sky.Local(), accelerator: "H1000" }),
    (e: Error) => e instanceof sky.ConfigError && /H1000/.test(e.message),
  );
  assert.throws(
    () => sky.Spec({ provider: {} as Provider }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /'provider' must be a provider/.test(e.message),
  );
  await assert.rejects(
    sky.ComputePool.start({ console: "silent" }),
    (e: Error) =>
      e instanceof sky.ConfigError && /'provider' is missing/.test(e.message),
  );
  await assert.rejects(
    sky.ComputePool.start({
      provider: sky.Local(),
      specs: [sky.Spec({ provider: sky.Local() })],
      console: "silent",
    }),
    (e: Error) => e instanceof sky.ConfigError && /both given/.test(e.message),
  );
  await assert.rejects(
    sky.ComputePool.start({ specs: [], console: "silent" }),
    (e: Error) =>
      e instanceof sky.ConfigError && /at least one sky.Spec/.test(e.message),
  );
  await assert.rejects(
    sky.ComputePool.start({
      specs: [{ provider: sky.Local() } as unknown as sky.Spec],
      console: "silent",
    }),
    (e: Error) => e instanceof sky.ConfigError && /sky.Spec/.test(e.message),
  );
});

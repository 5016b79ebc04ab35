/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.VastAI`
 * against the fake Vast.ai (tests/fakes/vastai.ts), whose instances are the
 * rig's hosts. Without the rig these tests are ignored with the reason
 * printed; under `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import { vastaiLeftovers } from "../clouds.ts";
import { FakeVastAI, TEST_VAST_KEY } from "../fakes/vastai.ts";
import { fakeCloudConformance } from "./fake_cloud.ts";
import { info } from "./user_script.ts";

await fakeCloudConformance({
  name: "sky.VastAI (fake Vast.ai)",
  kind: "vastai",
  start: (hosts) => FakeVastAI.start({ hosts }),
  recipe: (fake, scenario) => ({
    options: {
      baseUrl: fake.baseUrl,
      apiKey: TEST_VAST_KEY,
      // Three fitting offers (1003, unverified, too): one is left for the
      // replacement of an outbid instance.
      ...scenario === "reclaim" ? { minReliability: 0.5, verified: false } : {},
    },
    pool: {
      accelerator: "RTX 4090",
      allocation: scenario === "reclaim" ? "spot" : "spot-if-available",
    },
  }),
  takeBack: (fake, node) => fake.outbid(Number(node.instance)),
  leftovers: vastaiLeftovers,
  check: (fake, hosts) => async (scenario, pool, events) => {
    assert.equal(fake.live.length, 2);
    if (scenario === "reclaim") {
      // The outbid instance was destroyed; its replacement came from the
      // next offer (the pool's two first ones are taken).
      assert.deepEqual(
        fake.calls("PUT", /^\/asks\//).map((c) => c.path),
        ["/asks/1003/", "/asks/1001/", "/asks/1002/"],
      );
      const replaced = events.find((e) => e.type === "InstanceReplaced")!;
      assert.ok(fake.live.every((i) => String(i.id) !== replaced.previous));
      return;
    }
    const infos = await pool.broadcast(info());
    assert.deepEqual(infos.map((i) => i.hostname).sort(), [
      hosts[0].name,
      hosts[1].name,
    ]);
    // Two interruptible instances with bids, labelled with the pool.
    assert.deepEqual(fake.live.map((i) => i.offerId).sort(), [1001, 1002]);
    assert.ok(fake.live.every((i) => i.is_bid && i.label === pool.id));
    assert.deepEqual(
      fake.live.map((i) => i.request.price).sort(),
      [0.24, 0.264],
    );
    // Each node costs the bid placed for it, whichever offer it came from.
    assert.deepEqual(
      events.flatMap((e) =>
        e.type === "NodeReady" ? [[e.pricePerHour, e.spot]] : []
      ).sort(),
      [[0.24, true], [0.264, true]],
    );
    assert.equal(fake.sshKeys.length, 1);
    assert.ok(fake.sshKeys[0].endsWith(`skyward:${pool.id}`));
  },
});

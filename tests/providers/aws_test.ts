/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.AWS`
 * against the fake EC2 (tests/fakes/ec2.ts), whose instances are the rig's
 * hosts. Without the rig these tests are ignored with the reason printed;
 * under `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import type * as sky from "../../mod.ts";
import { ec2Leftovers } from "../clouds.ts";
import { FakeEc2, TEST_CREDENTIALS } from "../fakes/ec2.ts";
import { fakeCloudConformance } from "./fake_cloud.ts";
import { info } from "./user_script.ts";

// The SDK's credential chain must never reach for the instance metadata service here.
Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");

await fakeCloudConformance({
  name: "sky.AWS (fake EC2)",
  kind: "aws",
  start: (hosts) => FakeEc2.start({ hosts }),
  recipe: (fake) => ({
    options: {
      endpoint: fake.endpoint,
      region: fake.region,
      credentials: TEST_CREDENTIALS,
      allowSshFrom: ["10.213.0.0/24"],
    },
    env: { AWS_EC2_METADATA_DISABLED: "true" },
  }),
  takeBack: (fake, node) => fake.preempt(node.instance),
  leftovers: ec2Leftovers,
  check: (fake, hosts) => async (scenario, pool, events) => {
    const infos = await pool.broadcast(info());
    assert.equal(fake.live.length, 2);
    assert.equal(new Set(infos.map((i) => i.hostname)).size, 2);
    if (scenario === "reclaim") {
      const replaced = events.find((e) => e.type === "InstanceReplaced")!;
      assert.ok(fake.live.every((i) => i.id !== replaced.previous));
      return;
    }
    assert.deepEqual(
      infos.map((i) => i.hostname).sort(),
      [hosts[0].name, hosts[1].name],
    );
    assert.deepEqual(infos[1].peers, [hosts[0].address, hosts[1].address]);
    // What was asked of EC2.
    const run = fake.calls("RunInstances")[0] as Record<string, unknown>;
    assert.equal(
      (run.InstanceMarketOptions as { MarketType: string }).MarketType,
      "spot",
    );
    assert.equal(run.InstanceType, "t3.medium");
    // Each node carries its offer's price: t3.medium's spot price in
    // us-east-1b, the cheapest zone of the fake's DescribeSpotPriceHistory.
    assert.deepEqual(
      events.filter((e): e is sky.NodeReady => e.type === "NodeReady").map((
        e,
      ) => [e.pricePerHour, e.spot]),
      [[0.0125, true], [0.0125, true]],
    );
    const instance = fake.live[0];
    assert.equal(instance.metadataHttpTokens, "required");
    assert.equal(instance.shutdownBehavior, "terminate");
    assert.equal(instance.rootVolumeGb, 30);
    assert.equal(instance.zone, "us-east-1b");
    assert.equal(instance.tags["skyward:cluster"], pool.id);
    assert.match(instance.userData ?? "", /skyward-ttl 600/);
    assert.deepEqual(fake.keyPairs, [`skyward-${pool.id}`]);
    assert.deepEqual(fake.securityGroups, [`skyward-${pool.id}`]);
    // Host keys were read from the consoles (and the rig hosts' keys matched).
    assert.ok(fake.calls("GetConsoleOutput").length >= 2);
    const provisioned = events.find((e) =>
      e.type === "ClusterProvisioned"
    ) as sky.ClusterProvisioned;
    assert.equal(provisioned.region, "us-east-1");
  },
});

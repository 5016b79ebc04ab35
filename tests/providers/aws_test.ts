/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.AWS`
 * against the fake EC2 (tests/fakes/ec2.ts), whose instances are the rig's
 * hosts. Without the rig these tests are ignored with the reason printed;
 * under `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import type * as sky from "../../mod.ts";
import {
  cloudHosts,
  ec2Leftovers,
  releaseRigAtEnd,
  rigUsers,
} from "../clouds.ts";
import { FakeEc2, TEST_CREDENTIALS } from "../fakes/ec2.ts";
import { requireRig } from "../rig/rig.ts";
import { conformance } from "./conformance.ts";
import { info } from "./user_script.ts";

// The SDK's credential chain must never reach for the instance metadata service here.
Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`providers/aws_test.ts: ignored: ${reason}`);
const hosts = rig?.hosts ?? [];

conformance({
  name: "sky.AWS (fake EC2)",
  kind: "aws",
  unavailable: reason,
  open: async () => {
    const fake = await FakeEc2.start({ hosts: cloudHosts(hosts) });
    return {
      recipe: {
        kind: "aws",
        options: {
          endpoint: fake.endpoint,
          region: fake.region,
          credentials: TEST_CREDENTIALS,
          allowSshFrom: ["10.213.0.0/24"],
        },
        users: rigUsers(hosts),
        env: { AWS_EC2_METADATA_DISABLED: "true" },
      },
      takeBack: (node) => fake.preempt(node.instance),
      leftovers: () => ec2Leftovers(fake, hosts),
      check: async (scenario, pool, events) => {
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
      [Symbol.asyncDispose]: () => fake.close(),
    };
  },
});

releaseRigAtEnd(rig);

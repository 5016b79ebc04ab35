/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.Verda`
 * against the fake Verda (tests/fakes/verda.ts), whose instances are the
 * rig's hosts. Without the rig these tests are ignored with the reason
 * printed; under `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import type * as sky from "../../mod.ts";
import { verdaLeftovers } from "../clouds.ts";
import { FakeVerda, VERDA_TEST_CREDENTIALS } from "../fakes/verda.ts";
import { fakeCloudConformance } from "./fake_cloud.ts";
import { info } from "./user_script.ts";

await fakeCloudConformance({
  name: "sky.Verda (fake Verda)",
  kind: "verda",
  start: (hosts) => FakeVerda.start({ hosts }),
  recipe: (fake) => ({
    options: { baseUrl: fake.baseUrl, ...VERDA_TEST_CREDENTIALS },
  }),
  takeBack: (fake, node) => fake.discontinue(node.instance),
  leftovers: verdaLeftovers,
  check: (fake) => async (scenario, pool, events) => {
    const infos = await pool.broadcast(info());
    assert.equal(new Set(infos.map((i) => i.hostname)).size, 2);
    if (scenario !== "hello") return;
    assert.deepEqual(infos[0].peers, fake.instances.map((i) => i.ip));
    assert.deepEqual(
      infos.map((i) => i.hostname).sort(),
      fake.instances.map((i) => i.host!.user).sort(),
    );
    // What was asked of Verda.
    assert.equal(fake.instances.length, 2);
    const instance = fake.instances[0];
    assert.equal(instance.instanceType, "CPU.4V.16G");
    assert.equal(instance.isSpot, true);
    assert.equal(instance.contract, "SPOT");
    assert.equal(instance.location, "FIN-03");
    assert.equal(instance.image, "ubuntu-24.04");
    assert.equal(instance.description, `Skyward cluster ${pool.id}`);
    assert.deepEqual(instance.sshKeyIds, [fake.sshKeys[0].id]);
    assert.equal(instance.startupScriptId, fake.scripts[0].id);
    assert.deepEqual(instance.osVolume, {
      name: `${pool.id}-os`,
      size: 50,
      on_spot_discontinue: "delete_permanently",
    });
    assert.deepEqual(fake.sshKeys.map((k) => k.name), [`skyward-${pool.id}`]);
    const provisioned = events.find((e) =>
      e.type === "ClusterProvisioned"
    ) as sky.ClusterProvisioned;
    assert.equal(provisioned.provider, "verda");
    assert.equal(provisioned.region, "FIN-03");
  },
});

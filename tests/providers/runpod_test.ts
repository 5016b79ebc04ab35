/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.RunPod`
 * against the fake RunPod (tests/fakes/runpod.ts), whose pods are the rig's
 * hosts. Without the rig these tests are ignored with the reason printed;
 * under `CI=true` that is a failure instead.
 */
import assert from "node:assert/strict";
import { runpodLeftovers } from "../clouds.ts";
import { FakeRunPod, TEST_RUNPOD_KEY } from "../fakes/runpod.ts";
import { fakeCloudConformance } from "./fake_cloud.ts";
import { info } from "./user_script.ts";

await fakeCloudConformance({
  name: "sky.RunPod (fake RunPod)",
  kind: "runpod",
  start: (hosts) => FakeRunPod.start({ hosts }),
  recipe: (fake) => ({
    options: { apiKey: TEST_RUNPOD_KEY, baseUrl: fake.baseUrl },
    pool: { accelerator: "RTX 4090" },
  }),
  takeBack: (fake, node) => fake.preempt(node.instance),
  leftovers: runpodLeftovers,
  check: (fake) => async (scenario, pool) => {
    const running = fake.live.filter((p) => p.desiredStatus === "RUNNING");
    assert.equal(running.length, 2);
    if (scenario !== "hello") return;
    const infos = await pool.broadcast(info());
    assert.deepEqual(
      infos.map((i) => i.hostname).sort(),
      running.map((p) => p.host!.user).sort(),
    );
    assert.deepEqual(infos[1].accelerators, [{
      name: "RTX 4090",
      count: 1,
      memory: "24GB",
    }]);
    // Spot pods at the minimum bid, named for the pool.
    assert.ok(running.every((p) => p.interruptible && p.bidPerGpu === 0.2));
    assert.deepEqual(running.map((p) => p.name).sort(), [
      `skyward-${pool.id}-0`,
      `skyward-${pool.id}-1`,
    ]);
  },
});

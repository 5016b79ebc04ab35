/**
 * Pools on several specs across clouds: the RunPod and Vast.ai providers
 * against their fakes, whose machines are the SSH rig's hosts. The cheaper
 * cloud is chosen, a cloud that cannot launch gives way to the next, and
 * neither keeps anything afterwards.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { FakeRunPod, TEST_RUNPOD_KEY } from "./fakes/runpod.ts";
import { FakeVastAI, TEST_VAST_KEY } from "./fakes/vastai.ts";
import { info, square } from "./fixtures/cluster.ts";
import { requireRig, type RigHost } from "./rig/rig.ts";
import { cloudHosts, rigTester } from "./clouds.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) {
  console.warn(`selection_test.ts: cross-cloud tests ignored: ${reason}`);
}

const rigTest = rigTester(rig);

/** Both fakes, handing out the same rig hosts (only one cloud is used at a time). */
async function clouds(hosts: RigHost[]) {
  const runpod = await FakeRunPod.start({ hosts: cloudHosts(hosts) });
  const vast = await FakeVastAI.start({ hosts: cloudHosts(hosts) });
  const user = (address: string) =>
    hosts.find((h) => h.address === address)?.user ?? "root";
  return {
    runpod,
    vast,
    specs: (options: Partial<sky.SpecOptions> = {}) => [
      sky.Spec({
        provider: sky.RunPod({
          baseUrl: runpod.baseUrl,
          apiKey: TEST_RUNPOD_KEY,
          sshUser: (pod) => user(pod.ip ?? ""),
        }),
        ...options,
      }),
      sky.Spec({
        provider: sky.VastAI({
          baseUrl: vast.baseUrl,
          apiKey: TEST_VAST_KEY,
          sshUser: (i) => user(i.sshHost ?? ""),
        }),
        ...options,
      }),
    ],
    /** Asserts neither cloud holds a machine or a key of any pool. */
    assertEmpty() {
      assert.deepEqual(runpod.live.map((p) => p.name), []);
      assert.deepEqual(vast.live.map((i) => i.id), []);
      assert.deepEqual(vast.sshKeys, []);
    },
    async [Symbol.asyncDispose]() {
      await runpod[Symbol.asyncDispose]();
      await vast[Symbol.asyncDispose]();
    },
  };
}

rigTest(
  "selection 'cheapest' across RunPod and Vast.ai launches on the cheaper cloud only",
  async (hosts) => {
    await using c = await clouds(hosts);
    {
      await using pool = await sky.ComputePool.start({
        // Vast.ai first: the order must not matter to "cheapest".
        specs: c.specs().reverse(),
        selection: "cheapest",
        accelerator: sky.accelerators.RTX_4090(),
        allocation: "on-demand",
        nodes: 2,
        console: "silent",
      });
      // An RTX 4090 costs $0.34/h on demand at the fake RunPod, $0.35 for
      // the cheapest offer of the fake Vast.ai.
      assert.equal(pool.provider.name, "runpod");
      assert.deepEqual(await pool.run(sky.gather(square(2), square(3))), [
        4,
        9,
      ]);
      const infos = await pool.broadcast(info());
      assert.deepEqual(infos.map((i) => i.accelerators[0]?.name), [
        "RTX 4090",
        "RTX 4090",
      ]);
      assert.equal(c.runpod.live.length, 2);
      assert.equal(c.vast.live.length, 0);
    }
    c.assertEmpty();
  },
);

rigTest(
  "a cloud with no capacity gives way to the next spec, and keeps nothing",
  async (hosts) => {
    await using c = await clouds(hosts);
    c.runpod.noCapacity = true;
    const events: sky.PoolEvent[] = [];
    {
      await using pool = await sky.ComputePool.start({
        specs: c.specs(),
        selection: "first",
        accelerator: "RTX_4090",
        allocation: "on-demand",
        console: "silent",
        onEvent: (e) => events.push(e),
      });
      assert.equal(pool.provider.name, "vastai");
      assert.equal(await pool.run(square(5)), 25);
    }
    assert.deepEqual(
      events.filter((e) => e.type === "ClusterProvisioned").map((e) =>
        (e as { provider: string }).provider
      ),
      ["runpod", "vastai"],
    );
    c.assertEmpty();
  },
);

Deno.test("maxHourlyCost across clouds: NoOffersError naming the accelerator, the clouds and the cap", async () => {
  const runpod = await FakeRunPod.start();
  const vast = await FakeVastAI.start();
  try {
    await assert.rejects(
      sky.ComputePool.start({
        specs: [
          sky.Spec({
            provider: sky.RunPod({
              baseUrl: runpod.baseUrl,
              apiKey: TEST_RUNPOD_KEY,
            }),
          }),
          sky.Spec({
            provider: sky.VastAI({
              baseUrl: vast.baseUrl,
              apiKey: TEST_VAST_KEY,
            }),
          }),
        ],
        accelerator: "H100:8",
        allocation: "on-demand",
        maxHourlyCost: 5,
        console: "silent",
      }),
      (error: Error) => {
        assert.ok(error instanceof sky.NoOffersError, String(error));
        assert.match(
          error.message,
          /^No offers for H100 × 8 from runpod, vastai at most \$5\/h/,
        );
        return true;
      },
    );
    assert.deepEqual(runpod.live, []);
    assert.deepEqual(vast.live, []);
  } finally {
    await runpod[Symbol.asyncDispose]();
    await vast[Symbol.asyncDispose]();
  }
});

Deno.test({
  name: "the rig is released by the file that brought it up",
  ignore: !rig?.created,
  fn: () => rig!.release(),
});

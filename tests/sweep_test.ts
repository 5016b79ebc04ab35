/**
 * The provider contract's sweep: a pool whose machines could not all be
 * released says so and names the provider's sweep command; a provider
 * without one is told apart.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { sweepAdvice } from "../src/provider.ts";
import { tempRoot } from "./helpers.ts";

const root = await tempRoot();

Deno.test("a pool whose machines cannot be terminated at close names the provider's sweep command", async () => {
  const local = sky.Local({ root });
  let prepared: unknown;
  const ids: string[] = [];
  const provider: sky.Provider<any> = {
    ...local,
    sweepHint: (cluster) => `sweep-command --cluster ${cluster}`,
    async prepare(spec, offer) {
      prepared = await local.prepare(spec, offer);
      return prepared;
    },
    async provision(cluster, count) {
      const instances = await local.provision(cluster, count);
      ids.push(...instances.map((i) => i.id));
      return instances;
    },
    terminate: () => Promise.reject(new Error("the cloud refused: 503")),
  };
  const pool = await sky.ComputePool.start({
    provider,
    nodes: 1,
    console: "silent",
  });
  try {
    await assert.rejects(pool.close(), (error: Error) => {
      assert.equal(error.name, "ProvisioningError");
      assert.match(error.message, /the cloud refused: 503/);
      assert.ok(
        error.message.includes(
          `To remove them: sweep-command --cluster ${pool.id}`,
        ),
        error.message,
      );
      return true;
    });
  } finally {
    // What the failing terminate left, ended for real.
    await local.terminate(prepared as never, ids);
    await local.teardown(prepared as never);
  }
});

Deno.test("sweepAdvice names each cloud's cleanup command for the cluster, and says when there is none", () => {
  assert.equal(
    sweepAdvice(sky.RunPod({ apiKey: "k" }), "sky-1a2b"),
    "To remove them: deno run -A jsr:@skyward/skyward/cli cleanup --provider runpod --cluster sky-1a2b",
  );
  for (
    const provider of [
      sky.VastAI({ apiKey: "k" }),
      sky.Verda({ clientId: "i", clientSecret: "s" }),
    ]
  ) {
    assert.match(
      sweepAdvice(provider, "sky-1a2b"),
      new RegExp(`cleanup --provider ${provider.name} --cluster sky-1a2b$`),
    );
  }
  assert.match(
    sweepAdvice(sky.AWS({ region: "eu-west-1" }), "sky-1a2b"),
    /cleanup --provider aws --region eu-west-1 --cluster sky-1a2b$/,
  );
  assert.match(
    sweepAdvice(sky.Local({ root }), "sky-1a2b"),
    /workers stop by themselves/,
  );
});

Deno.test("cleanup refuses an option the provider cannot honour, naming it, before any request", async () => {
  await assert.rejects(
    sky.RunPod({ apiKey: "k", baseUrl: "http://127.0.0.1:9" }).cleanup({
      olderThan: 1,
    }),
    (error: Error) =>
      error.name === "ConfigError" &&
      /--older-than is not supported for runpod/.test(error.message),
  );
  await assert.rejects(
    sky.VastAI({ apiKey: "k", baseUrl: "http://127.0.0.1:9/api/v0" }).cleanup({
      region: "eu",
    }),
    /--region is not supported for vastai/,
  );
});

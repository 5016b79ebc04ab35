/**
 * The RunPod provider against the fake RunPod (tests/fakes/runpod.ts), which
 * speaks RunPod's GraphQL API and hands out the SSH rig's hosts as pods: a
 * whole run — API, SSH, bootstrap, task, teardown — is real except for the
 * cloud's front door.
 *
 * Tests that need no machine always run; the end-to-end ones need the rig
 * (tests/rig/rig.ts) and are ignored with the reason printed without it —
 * under `CI=true` that is a failure instead. The scenarios every provider
 * shares (hello on 2 nodes, a spot pod taken back mid-run, errors that
 * still tear down, nothing left) are the conformance suite's:
 * tests/providers/runpod_test.ts.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { generateSshKeyPair } from "../providers/_keys.ts";
import { z } from "zod";
import { RunPodApi } from "../providers/runpod/api.ts";
import {
  RUNPOD_GPU_TYPES,
  runpodGpuIds,
} from "../providers/runpod/gpu_types.ts";
import {
  BOOT_COMMAND,
  BOOT_SCRIPT,
  RUNPOD_ENV_FILE,
} from "../providers/runpod/pods.ts";
import { SshConnection } from "../src/transport/ssh/connection.ts";
import { SshAuthenticationError } from "../src/transport/ssh/errors.ts";
import { FakeRunPod, TEST_RUNPOD_KEY } from "./fakes/runpod.ts";
import {
  FAKE_RUNPOD_ENV,
  type FakeRunPodEnv,
} from "./fixtures/runpod_client.ts";
import { eventually } from "./helpers.ts";
import { requireRig, RIG_DIR, type RigHost } from "./rig/rig.ts";
import { cloudHosts, rigTester, runpodLeftovers } from "./clouds.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) {
  console.warn(`runpod_test.ts: RunPod end-to-end tests ignored: ${reason}`);
}

function provider(
  fake: FakeRunPod,
  hosts: RigHost[] = [],
  options: sky.RunPodOptions = {},
) {
  return sky.RunPod({
    apiKey: TEST_RUNPOD_KEY,
    baseUrl: fake.baseUrl,
    sshUser: (pod) => hosts.find((h) => h.address === pod.ip)?.user ?? "root",
    ...options,
  });
}

function spec(overrides: Partial<sky.ClusterSpec> = {}): sky.ClusterSpec {
  return {
    clusterId: `sky-test-${crypto.randomUUID().slice(0, 8)}`,
    nodes: 1,
    allocation: "spot-if-available",
    accelerator: sky.accelerators.RTX_4090(),
    ...overrides,
  };
}

/** Asserts the fake holds no live pod and no pod key is authorised on a rig host. */
async function assertEmpty(
  fake: FakeRunPod,
  hosts: RigHost[] = [],
): Promise<void> {
  assert.deepEqual(await runpodLeftovers(fake, hosts), []);
}

const rigTest = rigTester(rig);

// ---------------------------------------------------------------------------
// Offers and errors: no machine needed

Deno.test("offers: RunPod GPU types for the accelerator, priced per pod, cheapest first", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const [rtx] = await runpod.offers(spec());
  assert.equal(rtx.instanceType, "NVIDIA GeForce RTX 4090");
  assert.equal(rtx.spotPrice, 0.2);
  assert.equal(rtx.onDemandPrice, 0.34);
  assert.deepEqual(rtx.accelerator, {
    name: "RTX 4090",
    count: 1,
    memoryGb: 24,
  });
  // Bearer authentication, the GPU count and cloud passed to lowestPrice.
  assert.equal(fake.requests[0].auth, "bearer");
  assert.deepEqual(fake.calls("gpuTypes")[0], {
    lowestPriceInput: { gpuCount: 1 },
  });

  const two = await runpod.offers(
    spec({ accelerator: sky.accelerators.RTX_4090({ count: 2 }) }),
  );
  assert.deepEqual([two[0].spotPrice, two[0].onDemandPrice], [0.4, 0.68]);

  const a100 = await runpod.offers(
    spec({ allocation: "on-demand", accelerator: sky.accelerators.A100() }),
  );
  assert.deepEqual(a100.map((o) => [o.instanceType, o.onDemandPrice]), [
    ["NVIDIA A100 80GB PCIe", 1.19],
    ["NVIDIA A100-SXM4-80GB", 1.39],
  ]);
  const sxm = await runpod.offers(
    spec({ accelerator: sky.accelerators.A100({ formFactor: "SXM" }) }),
  );
  assert.deepEqual(sxm.map((o) => o.instanceType), ["NVIDIA A100-SXM4-80GB"]);

  const secure = await provider(fake, [], { cloudType: "SECURE" }).offers(
    spec({ allocation: "on-demand" }),
  );
  assert.equal(secure[0].onDemandPrice, 0.69);
  assert.equal(
    (fake.calls("gpuTypes").at(-1)!.lowestPriceInput as {
      secureCloud?: boolean;
    }).secureCloud,
    true,
  );
});

Deno.test("offers: nothing fits → NoOffersError 'No instances available on RunPod' saying why", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const rejects = async (
    overrides: Partial<sky.ClusterSpec>,
    why: RegExp,
  ) =>
    await assert.rejects(
      () => runpod.offers(spec(overrides)),
      (error: Error) => {
        assert.ok(error instanceof sky.NoOffersError, String(error));
        assert.match(error.message, /^No instances available on RunPod for /);
        assert.match(error.message, why);
        return true;
      },
    );
  await rejects(
    { accelerator: sky.accelerators.L40S() },
    /NVIDIA L40S is out of stock/,
  );
  await rejects(
    { allocation: "spot", accelerator: sky.accelerators.H100() },
    /no NVIDIA H100 80GB HBM3 is offered as spot.*'spot-if-available'/,
  );
  await rejects(
    { accelerator: sky.accelerators.T4() },
    /RunPod has no GPU type for T4/,
  );
  await rejects(
    { accelerator: sky.accelerators.RTX_4090({ count: 16 }) },
    /comes at most 8 per pod/,
  );
  await rejects(
    { architecture: "arm64" },
    /RunPod's GPU pods are x86_64 machines/,
  );
  await rejects(
    { maxHourlyCost: 0.1 },
    /costs \$0\.2000\/h, above maxHourlyCost \$0\.1000\/h/,
  );
});

Deno.test("the catalog maps to RunPod's GPU type ids by model, memory and form factor", () => {
  const ids = (a: sky.Accelerator) => runpodGpuIds(a).map((g) => g.id);
  assert.deepEqual(ids(sky.accelerators.RTX_4090({ count: 4 })), [
    "NVIDIA GeForce RTX 4090",
  ]);
  assert.deepEqual(ids(sky.accelerators.A100({ memory: "40GB" })), [
    "NVIDIA A100-SXM4-40GB",
  ]);
  assert.deepEqual(ids(sky.accelerators.H100()), [
    "NVIDIA H100 PCIe",
    "NVIDIA H100 80GB HBM3",
  ]);
  assert.deepEqual(ids(sky.accelerators.H100({ formFactor: "NVL" })), [
    "NVIDIA H100 NVL",
  ]);
  assert.deepEqual(ids(sky.accelerators.V100({ memory: "16GB" })), [
    "Tesla V100-PCIE-16GB",
    "Tesla V100-SXM2-16GB",
  ]);
  assert.deepEqual(ids(sky.accelerators.MI300X()), ["AMD Instinct MI300X OAM"]);
  assert.deepEqual(ids(sky.accelerators.Trainium1()), []);
});

Deno.test("the GPU type table (gpu_types.json) names catalog models and their form factors", () => {
  for (const [name, ids] of Object.entries(RUNPOD_GPU_TYPES)) {
    const spec = sky.accelerators.catalog.find((s) => s.name === name);
    assert.ok(spec, `${name} is not a catalog model`);
    assert.ok(ids.length > 0, `${name} has no ids`);
    for (const gpu of ids) {
      assert.equal(typeof gpu.id, "string");
      assert.ok(gpu.memoryGb > 0, `${gpu.id} has no memory`);
      if (gpu.formFactor === undefined) continue;
      assert.ok(
        spec.formFactors?.includes(gpu.formFactor),
        `${gpu.id}: ${name} does not come as ${gpu.formFactor}`,
      );
    }
  }
});

Deno.test("a pool without an accelerator: ConfigError saying RunPod runs GPU pods", async () => {
  await using fake = await FakeRunPod.start();
  await assert.rejects(
    () =>
      sky.ComputePool.start({ provider: provider(fake), console: "silent" }),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /sky\.RunPod\(\) runs GPU pods: pass the pool an accelerator/.test(
        error.message,
      ),
  );
  assert.equal(fake.requests.length, 0);
});

Deno.test("missing API key: ComputePool.start rejects with a ConfigError naming RUNPOD_API_KEY, before any request", async () => {
  await using fake = await FakeRunPod.start();
  const saved = Deno.env.get("RUNPOD_API_KEY");
  Deno.env.delete("RUNPOD_API_KEY");
  try {
    await assert.rejects(
      () =>
        sky.ComputePool.start({
          provider: sky.RunPod({ baseUrl: fake.baseUrl }),
          accelerator: "RTX 4090",
          console: "silent",
        }),
      (error: Error) => {
        assert.ok(error instanceof sky.ConfigError, String(error));
        assert.match(error.message, /No RunPod API key found/);
        assert.match(error.message, /Set RUNPOD_API_KEY/);
        assert.match(error.message, /sky\.RunPod\(\{ apiKey \}\)/);
        return true;
      },
    );
    assert.equal(fake.requests.length, 0);
    // The variable is read when set.
    Deno.env.set("RUNPOD_API_KEY", TEST_RUNPOD_KEY);
    const offers = await sky.RunPod({ baseUrl: fake.baseUrl }).offers(spec());
    assert.equal(offers[0].instanceType, "NVIDIA GeForce RTX 4090");
  } finally {
    if (saved === undefined) Deno.env.delete("RUNPOD_API_KEY");
    else Deno.env.set("RUNPOD_API_KEY", saved);
  }
});

Deno.test("a refused API key: ConfigError with RunPod's answer and what to set, and nothing launched", async () => {
  await using fake = await FakeRunPod.start();
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: provider(fake, [], { apiKey: "rpa_WRONG" }),
        accelerator: "RTX 4090",
        console: "silent",
      }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(
        error.message,
        /RunPod refused the credentials \(401: Unauthorized\)/,
      );
      assert.match(error.message, /RUNPOD_API_KEY/);
      return true;
    },
  );
  // A 401 is not retried.
  assert.equal(fake.requests.length, 1);
  assert.deepEqual(fake.pods, []);
  await assert.rejects(
    () => provider(fake, [], { apiKey: "rpa_WRONG" }).checkCredentials!(),
    sky.ConfigError,
  );
  assert.equal(
    await provider(fake).checkCredentials!(),
    "account user_fake0001, balance $42.50",
  );
});

Deno.test("rate limits and server errors are retried; RunPod's own message is reported for the rest", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  fake.failNext(429, 503);
  const offers = await runpod.offers(spec());
  assert.equal(offers[0].instanceType, "NVIDIA GeForce RTX 4090");
  assert.equal(fake.calls("gpuTypes").length, 3);

  // A bid below the minimum: RunPod's message, not a capacity problem.
  const low = provider(fake, [], { bidPerGpu: 0.05 });
  const cluster = await low.prepare(
    spec(),
    (await low.offers(spec()))[0],
  );
  await assert.rejects(() => low.provision(cluster, 1), (error: Error) => {
    assert.ok(error instanceof sky.ProvisioningError, String(error));
    assert.match(
      error.message,
      /^RunPod podRentInterruptable failed: Your bid price of \$0\.05\/hr is below the minimum bid price of \$0\.2\/hr/,
    );
    return true;
  });
  await low.teardown(cluster);
  assert.deepEqual(fake.live, []);

  // GraphQL errors, with status 200 or 400, carry RunPod's message.
  const api = new RunPodApi({ apiKey: TEST_RUNPOD_KEY, baseUrl: fake.baseUrl });
  await assert.rejects(
    () => api.run("nosuchfield", "query { nosuchfield }", {}, z.unknown()),
    /^RunPodError: RunPod nosuchfield failed: Cannot query field "nosuchfield" on type "Query"\.$/,
  );
  await assert.rejects(
    () => api.run("gpuTypes", " ", {}, z.unknown()),
    /^RunPodError: RunPod gpuTypes failed: Must provide query string\.$/,
  );
});

Deno.test("provision: a spot pod at the minimum bid with the pool's key, sshd command and port 22; on-demand when spot has no capacity", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const s = spec({ diskGb: 50 });
  const cluster = await runpod.prepare(s, (await runpod.offers(s))[0]);
  assert.match(cluster.publicKey, /^ssh-ed25519 /);
  assert.ok(
    !JSON.stringify(cluster).includes("PRIVATE KEY"),
    "the private key is printed with the cluster",
  );
  const [spot] = await runpod.provision(cluster, 1);
  assert.equal(spot.spot, true);
  const input = fake.calls("podRentInterruptable")[0].input as Record<
    string,
    unknown
  >;
  assert.equal(input.bidPerGpu, 0.2);
  assert.equal(input.gpuTypeId, "NVIDIA GeForce RTX 4090");
  assert.equal(input.gpuCount, 1);
  assert.equal(input.cloudType, "ALL");
  assert.equal(input.ports, "22/tcp");
  assert.equal(input.supportPublicIp, true);
  assert.equal(input.containerDiskInGb, 50);
  assert.equal(input.volumeInGb, 0);
  assert.equal(input.name, `skyward-${s.clusterId}-0`);
  assert.equal(input.dockerArgs, BOOT_COMMAND);
  const env = Object.fromEntries(
    (input.env as { key: string; value: string }[]).map((
      e,
    ) => [e.key, e.value]),
  );
  assert.equal(env.PUBLIC_KEY, cluster.publicKey);
  assert.equal(atob(env.SKYWARD_BOOT), BOOT_SCRIPT);
  assert.equal(env.SKYWARD_CLUSTER, s.clusterId);

  fake.noSpotCapacity = true;
  const [onDemand] = await runpod.provision(cluster, 1);
  assert.equal(onDemand.spot, false);
  assert.equal(fake.calls("podRentInterruptable").length, 2);
  assert.equal(fake.calls("podFindAndDeployOnDemand").length, 1);
  assert.equal(
    (fake.calls("podFindAndDeployOnDemand")[0].input as { name: string }).name,
    `skyward-${s.clusterId}-2`,
  );
  // A pod RunPod no longer knows is unknown; a terminated one is terminated.
  assert.equal(await runpod.getInstance(cluster, "nosuchpod"), undefined);
  await runpod.terminate(cluster, [spot.id, "nosuchpod"]);
  assert.equal(
    (await runpod.getInstance(cluster, spot.id))?.status,
    "terminated",
  );
  await runpod.teardown(cluster);
  await assertEmpty(fake);
});

Deno.test("a deploy whose answer is lost (a gateway error, a dropped connection) is looked up by the pod's name, not sent again: exactly one pod exists", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const s = spec();
  const cluster = await runpod.prepare(s, (await runpod.offers(s))[0]);
  fake.failNextAfterwards(502);
  const [pod] = await runpod.provision(cluster, 1);
  assert.equal(fake.calls("podRentInterruptable").length, 1);
  assert.deepEqual(fake.live.map((p) => [p.id, p.name]), [
    [pod.id, `skyward-${s.clusterId}-0`],
  ]);
  // The connection drops after the pod is made: the same.
  fake.dropCreates = 1;
  const [second] = await runpod.provision(cluster, 1);
  assert.equal(fake.calls("podRentInterruptable").length, 2);
  assert.deepEqual(fake.live.map((p) => p.id), [pod.id, second.id]);
  assert.equal(fake.live[1].name, `skyward-${s.clusterId}-1`);
  await runpod.teardown(cluster);
  await assertEmpty(fake);
});

Deno.test("podTerminate and pod are sent as runpodctl and runpod-python write them: no guessed input type, which RunPod would refuse", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const s = spec();
  const cluster = await runpod.prepare(s, (await runpod.offers(s))[0]);
  const [pod] = await runpod.provision(cluster, 1);
  assert.equal((await runpod.getInstance(cluster, pod.id))?.id, pod.id);
  assert.deepEqual(fake.calls("pod").at(-1), { podId: pod.id });
  await runpod.terminate(cluster, [pod.id]);
  assert.deepEqual(fake.calls("podTerminate"), [{ podId: pod.id }]);
  assert.deepEqual(fake.live, []);
  // A type name no official client uses is refused before anything runs.
  const api = new RunPodApi({ apiKey: TEST_RUNPOD_KEY, baseUrl: fake.baseUrl });
  await assert.rejects(
    () =>
      api.run(
        "podTerminate",
        "mutation T($input: PodTerminateInput!) { podTerminate(input: $input) }",
        { input: { podId: pod.id } },
        z.unknown(),
      ),
    /RunPod podTerminate failed: Unknown type "PodTerminateInput"\./,
  );
  // The account's pods, as a null list when there are none.
  fake.nullLists = true;
  await using empty = await FakeRunPod.start();
  empty.nullLists = true;
  assert.deepEqual(await provider(empty).cleanup(), { pods: [], names: [] });
  await runpod.teardown(cluster);
});

Deno.test("dataCenterId: the ids RunPod lists (EUR-IS-1, EUR-NO-1) are accepted and sent; one it does not list is a ConfigError naming those it does", async () => {
  await using fake = await FakeRunPod.start();
  for (const id of ["EUR-IS-1", "EUR-NO-1", "US-TX-3", "EU-RO-1"]) {
    const runpod = provider(fake, [], { dataCenterId: id });
    const s = spec();
    const [offer] = await runpod.offers(s);
    assert.equal(offer.region, id);
    const cluster = await runpod.prepare(s, offer);
    await runpod.provision(cluster, 1);
    const input = fake.calls("podRentInterruptable").at(-1)!.input as {
      dataCenterId: string;
    };
    assert.equal(input.dataCenterId, id);
    await runpod.teardown(cluster);
  }
  await assert.rejects(
    () => provider(fake, [], { dataCenterId: "EUR-XX-9" }).offers(spec()),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(
        error.message,
        /dataCenterId: "EUR-XX-9" \}\): RunPod lists no such data center; it lists EU-RO-1, EUR-IS-1, EUR-NO-1/,
      );
      return true;
    },
  );
  assert.throws(
    () => sky.RunPod({ dataCenterId: "EU RO 1" }),
    (error: Error) =>
      error instanceof sky.ConfigError && /dataCenterId/.test(error.message),
  );
  await assertEmpty(fake);
});

Deno.test("the power-off command terminates its own pod with the pod-scoped key RunPod sets in the pod", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const s = spec();
  const cluster = await runpod.prepare(s, (await runpod.offers(s))[0]);
  const [pod, other] = await runpod.provision(cluster, 2);
  const made = fake.pods.find((p) => p.id === pod.id)!;
  const command = runpod.powerOffCommand!;
  assert.match(command, /runpodctl remove pod "\$RUNPOD_POD_ID"/);
  assert.ok(command.includes(RUNPOD_ENV_FILE));
  // As in the pod: RUNPOD_POD_ID and its key in the environment, no runpodctl.
  const run = await new Deno.Command("/bin/sh", {
    args: ["-c", command],
    clearEnv: true,
    env: {
      PATH: "/usr/bin:/bin",
      RUNPOD_POD_ID: pod.id,
      RUNPOD_API_KEY: made.apiKey,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(run.success, new TextDecoder().decode(run.stderr));
  const terminate = fake.requests.filter((r) => r.operation === "podTerminate");
  assert.deepEqual(terminate.map((r) => [r.podKey, r.variables]), [
    [pod.id, { podId: pod.id }],
  ]);
  assert.deepEqual(fake.live.map((p) => p.id), [other.id]);
  // The pod's key terminates that pod and nothing else.
  const refused = await new Deno.Command("/bin/sh", {
    args: ["-c", command],
    clearEnv: true,
    env: {
      PATH: "/usr/bin:/bin",
      RUNPOD_POD_ID: other.id,
      RUNPOD_API_KEY: made.apiKey,
    },
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(refused.success, false);
  assert.deepEqual(fake.live.map((p) => p.id), [other.id]);
  await runpod.teardown(cluster);
  await assertEmpty(fake);
});

Deno.test("no capacity: NoOffersError 'No instances available on RunPod' naming the GPU, and nothing left", async () => {
  await using fake = await FakeRunPod.start();
  fake.noCapacity = true;
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: provider(fake),
        accelerator: sky.accelerators.RTX_4090(),
        console: "silent",
      }),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No instances available on RunPod for 1x NVIDIA GeForce RTX 4090 \(spot, then on-demand\)/,
      );
      assert.match(
        error.message,
        /spot: There are no longer any instances available/,
      );
      assert.match(
        error.message,
        /on-demand: There are no longer any instances available/,
      );
      return true;
    },
  );
  assert.equal(fake.calls("podRentInterruptable").length, 1);
  assert.equal(fake.calls("podFindAndDeployOnDemand").length, 1);
  await assertEmpty(fake);
});

Deno.test("cleanup() terminates the pods Skyward pools left; a dry run only lists them", async () => {
  await using fake = await FakeRunPod.start();
  const runpod = provider(fake);
  const s = spec({ clusterId: "sky-orphan-1" });
  const cluster = await runpod.prepare(s, (await runpod.offers(s))[0]);
  await runpod.provision(cluster, 2);
  const dry = await runpod.cleanup({ dryRun: true });
  assert.deepEqual(dry.names.sort(), [
    "skyward-sky-orphan-1-0",
    "skyward-sky-orphan-1-1",
  ]);
  assert.equal(fake.live.length, 2);
  assert.deepEqual((await runpod.cleanup({ cluster: "sky-other" })).pods, []);
  const report = await runpod.cleanup();
  assert.equal(report.pods.length, 2);
  await assertEmpty(fake);
});

// ---------------------------------------------------------------------------
// The pods' command, in a real container

const DOCKER_HOST = Deno.env.get("DOCKER_HOST") ??
  "unix:///run/skyward-docker/docker.sock";
const BASE_IMAGE = "skyward-base:bookworm-v1";

async function docker(
  ...args: string[]
): Promise<{ ok: boolean; out: string }> {
  try {
    const output = await new Deno.Command("docker", {
      args,
      env: { DOCKER_HOST },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(
      output.success ? output.stdout : output.stderr,
    );
    return { ok: output.success, out: text.trim() };
  } catch (error) {
    return { ok: false, out: (error as Error).message };
  }
}

const image = await docker(
  "image",
  "inspect",
  "--format",
  "{{.Id}}",
  BASE_IMAGE,
);
if (!image.ok) {
  console.warn(
    `runpod_test.ts: the pod command test is ignored: no ${BASE_IMAGE} at ${DOCKER_HOST} ` +
      "(deno task docker:up, deno task image:build): " + image.out,
  );
}

Deno.test({
  name:
    "the pods' command authorises the pool's key for root and serves SSH in a stock image",
  ignore: !image.ok,
  fn: async () => {
    const id = crypto.randomUUID().slice(0, 8);
    const label = `skyward.cluster=sky-runpod-boot-${id}`;
    const network = `skyward-rpboot-${id}`;
    const keys = await generateSshKeyPair(`sky-runpod-boot-${id}`);
    const created = await docker(
      "network",
      "create",
      "--label",
      label,
      network,
    );
    assert.ok(created.ok, created.out);
    let container = "";
    try {
      const run = await docker(
        "run",
        "-d",
        "--rm",
        "--label",
        label,
        "--network",
        network,
        "-e",
        `PUBLIC_KEY=${keys.publicKey}`,
        "-e",
        `SKYWARD_BOOT=${btoa(BOOT_SCRIPT)}`,
        // What RunPod sets in every pod.
        "-e",
        "RUNPOD_POD_ID=pod0abc123",
        "-e",
        "RUNPOD_API_KEY=rpa_PODSCOPEDKEY0001",
        BASE_IMAGE,
        // RunPod splits the command line as a shell does.
        "sh",
        "-c",
        BOOT_COMMAND,
      );
      assert.ok(run.ok, run.out);
      container = run.out;
      const address = (await docker(
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
      )).out;
      assert.match(address, /^\d+\.\d+\.\d+\.\d+$/);
      const ssh = await SshConnection.connect({
        host: address,
        user: "root",
        privateKey: keys.privateKey,
        retries: 20,
        retryDelay: 100,
        reconnect: false,
      });
      try {
        const result = await ssh.run(
          "id -un; pgrep -x sshd >/dev/null && echo sshd",
        );
        assert.equal(result.stdout, "root\nsshd\n");
        // The SSH session does not inherit the pod's environment: the
        // power-off command finds the pod's id and key (in the file the
        // command kept, else in PID 1's environment) and asks runpodctl
        // (a stub that records its call) to remove the pod.
        const stub = await ssh.run(
          `mkdir -p /stub && printf '#!/bin/sh\\necho "$RUNPOD_API_KEY $RUNPOD_GRAPHQL_URL $*" >>/tmp/runpodctl.args\\n' >/stub/runpodctl && chmod 755 /stub/runpodctl && stat -c %a ${RUNPOD_ENV_FILE}`,
        );
        assert.equal(stub.stdout, "600\n");
        const command = sky.RunPod({ apiKey: "x" }).powerOffCommand!;
        const powerOff = `export PATH=/stub:$PATH\n${command}`;
        // (The effect is checked, not the exit status, which an SSH channel
        // may close without.)
        await ssh.run(powerOff);
        await ssh.run(`rm ${RUNPOD_ENV_FILE}`);
        await ssh.run(powerOff);
        assert.equal(
          (await ssh.run("cat /tmp/runpodctl.args")).stdout,
          "rpa_PODSCOPEDKEY0001 https://api.runpod.io/graphql remove pod pod0abc123\n"
            .repeat(2),
        );
      } finally {
        await ssh.close();
      }
      // Another key is refused.
      const other = await generateSshKeyPair("other");
      await assert.rejects(
        () =>
          SshConnection.connect({
            host: address,
            user: "root",
            privateKey: other.privateKey,
            retries: 0,
            reconnect: false,
          }),
        SshAuthenticationError,
      );
    } finally {
      if (container) await docker("rm", "-f", container);
      await docker("network", "rm", network);
    }
    const left = await docker("ps", "-aq", "--filter", `label=${label}`);
    assert.equal(left.out, "");
  },
});

// ---------------------------------------------------------------------------
// End to end on the rig

rigTest(
  "a RunPod client killed with kill -9 leaves no pod: each worker terminates its own pod through the API",
  async (hosts) => {
    // The pods must reach the fake: it listens on the rig's bridge.
    const bridge = hosts[0].address.replace(/\.\d+$/, ".1");
    await using fake = await FakeRunPod.start({
      hostname: bridge,
      hosts: cloudHosts(hosts).map((h, i) => ({
        ...h,
        tmpDir: `${RIG_DIR}/host${hosts[i].index}/tmp`,
      })),
    });
    const env: FakeRunPodEnv = {
      baseUrl: fake.baseUrl,
      apiKey: TEST_RUNPOD_KEY,
      users: Object.fromEntries(hosts.map((h) => [h.address, h.user])),
      nodes: 2,
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./fixtures/runpod_client.ts", import.meta.url).pathname,
      ],
      env: { [FAKE_RUNPOD_ENV]: JSON.stringify(env) },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    let line = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      while (!line.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) {
          throw new Error(`the client exited early: ${await stderr}`);
        }
        line += value;
      }
      const { pods } = JSON.parse(line.split("\n")[0]) as { pods: string[] };
      assert.equal(pods.length, 2);
      assert.deepEqual(fake.live.map((p) => p.id).sort(), [...pods].sort());
      child.kill("SIGKILL");
      await child.status;
      // No teardown ran: each pod's worker terminated its own pod.
      await eventually(() => fake.live.length === 0, 30_000, "pods gone");
      const terminated = fake.requests.filter((r) =>
        r.operation === "podTerminate"
      );
      assert.deepEqual(
        terminated.map((r) => r.podKey).sort(),
        [...pods].sort(),
      );
      await assertEmpty(fake, hosts);
    } finally {
      reader.releaseLock();
      child.stdout.cancel().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await stderr.catch(() => "");
      // Whatever is left, the test's own sweep removes.
      await provider(fake).cleanup();
    }
  },
);

Deno.test({
  name: "the rig is released by the file that brought it up",
  ignore: !rig?.created,
  fn: () => rig!.release(),
});

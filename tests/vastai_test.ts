/**
 * The Vast.ai provider against the fake Vast.ai (tests/fakes/vastai.ts),
 * which speaks Vast.ai's REST API, checks the API key and hands out the SSH
 * rig's hosts as instances: a whole run — API, SSH, bootstrap, task,
 * teardown — is real except for the cloud's front door.
 *
 * Tests that need no machine (offers, credentials, errors, failover, the
 * sweep) always run. The end-to-end scenarios every provider shares (hello
 * on 2 nodes, an outbid instance replaced mid-run, errors that still tear
 * down, nothing left) are the conformance suite's:
 * tests/providers/vastai_test.ts.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { HttpError } from "../providers/_http.ts";
import { onstartScript } from "../providers/vastai/instances.ts";
import { vastGpuNames } from "../providers/vastai/offers.ts";
import { FakeVastAI, TEST_VAST_KEY } from "./fakes/vastai.ts";
import type { RigHost } from "./rig/rig.ts";
import { vastaiLeftovers } from "./clouds.ts";

function provider(
  fake: FakeVastAI,
  hosts: RigHost[] = [],
  options: sky.VastAIOptions = {},
) {
  return sky.VastAI({
    baseUrl: fake.baseUrl,
    apiKey: TEST_VAST_KEY,
    sshUser: (i) => hosts.find((h) => h.address === i.sshHost)?.user ?? "root",
    ...options,
  });
}

function spec(overrides: Partial<sky.ClusterSpec> = {}): sky.ClusterSpec {
  return {
    clusterId: `sky-test-${crypto.randomUUID().slice(0, 8)}`,
    nodes: 1,
    allocation: "on-demand",
    ...overrides,
  };
}

/** Asserts the fake holds nothing of any pool: no live instance, no SSH key, no authorised line. */
async function assertEmpty(
  fake: FakeVastAI,
  hosts: RigHost[] = [],
): Promise<void> {
  assert.deepEqual(await vastaiLeftovers(fake, hosts), []);
}

// ---------------------------------------------------------------------------
// Offers and errors: no machine needed

Deno.test("catalog accelerators map to Vast.ai's GPU names", () => {
  assert.deepEqual(vastGpuNames(sky.accelerators.T4()), ["Tesla T4"]);
  assert.deepEqual(vastGpuNames(sky.accelerators.RTX_4090()), ["RTX 4090"]);
  assert.deepEqual(
    vastGpuNames(sky.accelerators.H100({ formFactor: "SXM" })),
    ["H100 SXM"],
  );
  assert.deepEqual(
    vastGpuNames(sky.accelerators.A100({ formFactor: "PCIe" })),
    ["A100 PCIE"],
  );
  assert.deepEqual(vastGpuNames(sky.accelerators.RTX_6000_Ada()), [
    "RTX 6000Ada",
  ]);
  assert.deepEqual(vastGpuNames(sky.accelerators.TPUv5e()), []);
});

Deno.test("offers: the search carries the pool's filters and offers come cheapest first for the allocation", async () => {
  await using fake = await FakeVastAI.start();
  const vast = provider(fake);
  const rtx = await vast.offers(
    spec({ accelerator: sky.accelerators.RTX_4090() }),
  ) as sky.VastOffer[];
  // 1003 is cheaper but unverified and unreliable; 1004 has two GPUs.
  assert.deepEqual(rtx.map((o) => o.offerId), [1001, 1002]);
  assert.equal(rtx[0].instanceType, "1x RTX 4090");
  assert.equal(rtx[0].onDemandPrice, 0.35);
  assert.equal(rtx[0].spotPrice, 0.2);
  assert.deepEqual(rtx[0].accelerator, {
    name: "RTX 4090",
    count: 1,
    memoryGb: 24,
  });
  const body = fake.calls("POST", /^\/bundles\/$/)[0].body as Record<
    string,
    unknown
  >;
  assert.deepEqual(body.gpu_name, { in: ["RTX 4090"] });
  assert.deepEqual(body.num_gpus, { eq: 1 });
  assert.deepEqual(body.reliability2, { gte: 0.95 });
  assert.deepEqual(body.verified, { eq: true });
  assert.deepEqual(body.rentable, { eq: true });
  assert.equal(body.type, "on-demand");

  const looser = await provider(fake, [], {
    minReliability: 0.5,
    verified: false,
  }).offers(spec({ accelerator: sky.accelerators.RTX_4090() }));
  assert.equal((looser[0] as sky.VastOffer).offerId, 1003);

  const two = await vast.offers(
    spec({ accelerator: sky.accelerators.RTX_4090({ count: 2 }) }),
  );
  assert.deepEqual(two.map((o) => (o as sky.VastOffer).offerId), [1004]);

  const a100 = await vast.offers(
    spec({ accelerator: sky.accelerators.A100() }),
  );
  assert.deepEqual(a100.map((o) => o.instanceType), ["1x A100 SXM4"]);
  const a100small = await vast.offers(
    spec({ accelerator: sky.accelerators.A100({ memory: "40GB" }) }),
  );
  assert.deepEqual(a100small.map((o) => o.instanceType), [
    "1x A100 PCIE",
    "1x A100 SXM4",
  ]);

  const cuda = await provider(fake, [], { cudaVersion: 12 }).offers(spec());
  assert.ok(cuda.every((o) => o.instanceType !== "1x RTX 3090"));
  const anyGpu = await vast.offers(spec());
  assert.equal(anyGpu[0].instanceType, "1x Tesla T4");

  const spot = await vast.offers(
    spec({ allocation: "spot", accelerator: sky.accelerators.RTX_4090() }),
  );
  assert.equal(
    (fake.calls("POST", /^\/bundles\/$/).at(-1)!.body as { type: string })
      .type,
    "bid",
  );
  assert.equal(spot[0].spotPrice, 0.2);

  const canada = await vast.offers(
    spec({ region: "CA", accelerator: sky.accelerators.RTX_4090() }),
  );
  assert.deepEqual(canada.map((o) => (o as sky.VastOffer).offerId), [1002]);
  const capped = await vast.offers(spec({ maxHourlyCost: 0.16 }));
  assert.deepEqual(capped.map((o) => o.instanceType), ["1x Tesla T4"]);
});

Deno.test("offers: nothing fits → NoOffersError naming what was asked and what to try", async () => {
  await using fake = await FakeVastAI.start();
  const vast = provider(fake);
  await assert.rejects(
    () =>
      vast.offers(
        spec({
          accelerator: sky.accelerators.RTX_4090(),
          maxHourlyCost: 0.1,
        }),
      ),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No instances available on Vast\.ai for 1x RTX 4090, reliability ≥ 0\.95, verified, ≤ \$0\.1000\/h \(on-demand\)/,
      );
      assert.match(error.message, /a higher maxHourlyCost/);
      return true;
    },
  );
  await assert.rejects(
    () => vast.offers(spec({ accelerator: sky.accelerators.TPUv5e() })),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /Vast\.ai rents no TPUv5e \(Google\)/.test(error.message),
  );
  await assert.rejects(
    () =>
      vast.offers(spec({ accelerator: sky.accelerators.T4({ count: 0.5 }) })),
    (error: Error) =>
      error instanceof sky.ConfigError && /whole GPUs/.test(error.message),
  );
  assert.throws(
    () => sky.VastAI({ minReliability: 2 }),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /Invalid sky\.VastAI options/.test(error.message) &&
      /minReliability/.test(error.message),
  );
  // The instance listing is found beside /api/v0: another base is refused.
  assert.throws(
    () => sky.VastAI({ baseUrl: "http://127.0.0.1:9/vast" }),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /baseUrl/.test(error.message) &&
      /must end with \/api\/v0/.test(error.message),
  );
});

Deno.test("missing key: ComputePool.start rejects with a ConfigError naming VAST_API_KEY and the vastai key file", async () => {
  await using fake = await FakeVastAI.start();
  const home = await Deno.makeTempDir({ prefix: "skyward-vast-home-" });
  const saved = Object.fromEntries(
    ["HOME", "XDG_CONFIG_HOME", "VAST_API_KEY", "DENO_DIR"].map((
      k,
    ) => [k, Deno.env.get(k)]),
  );
  // The pool's bundler runs `deno info`, whose cache must not move with HOME.
  const denoDir = saved.DENO_DIR ?? JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] })
        .output()).stdout,
    ),
  ).denoDir;
  try {
    Deno.env.set("DENO_DIR", denoDir);
    Deno.env.set("HOME", home);
    Deno.env.delete("XDG_CONFIG_HOME");
    Deno.env.delete("VAST_API_KEY");
    const vast = sky.VastAI({ baseUrl: fake.baseUrl });
    await assert.rejects(
      () => sky.ComputePool.start({ provider: vast, console: "silent" }),
      (error: Error) => {
        assert.ok(error instanceof sky.ConfigError, String(error));
        assert.match(error.message, /^No Vast\.ai API key found/);
        assert.match(error.message, /set VAST_API_KEY/);
        assert.match(error.message, /vastai set api-key/);
        assert.ok(
          error.message.includes(`${home}/.config/vastai/vast_api_key`),
          error.message,
        );
        return true;
      },
    );
    assert.equal(fake.requests.length, 0);

    // The key file the vastai CLI writes, then the older CLIs' file, then the variable.
    await Deno.writeTextFile(`${home}/.vast_api_key`, `${TEST_VAST_KEY}\n`);
    assert.match(
      await sky.VastAI({ baseUrl: fake.baseUrl }).checkCredentials!(),
      /^account 4242 \(skyward@example\.com\), credit \$25\.50$/,
    );
    await Deno.remove(`${home}/.vast_api_key`);
    await Deno.mkdir(`${home}/.config/vastai`, { recursive: true });
    await Deno.writeTextFile(
      `${home}/.config/vastai/vast_api_key`,
      TEST_VAST_KEY,
    );
    assert.match(
      await sky.VastAI({ baseUrl: fake.baseUrl }).checkCredentials!(),
      /^account 4242/,
    );
    await Deno.remove(`${home}/.config`, { recursive: true });
    Deno.env.set("VAST_API_KEY", TEST_VAST_KEY);
    assert.match(
      await sky.VastAI({ baseUrl: fake.baseUrl }).checkCredentials!(),
      /^account 4242/,
    );
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a bad key: ComputePool.start rejects with a ConfigError quoting Vast.ai, and nothing is left", async () => {
  await using fake = await FakeVastAI.start();
  const vast = provider(fake, [], { apiKey: "not-the-key" });
  await assert.rejects(
    () => sky.ComputePool.start({ provider: vast, console: "silent" }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(
        error.message,
        /^Vast\.ai refused the credentials \(401: Invalid user key\)/,
      );
      assert.match(error.message, /VAST_API_KEY/);
      return true;
    },
  );
  // Bearer authentication was sent, and refused before anything was made.
  assert.ok(fake.requests.length > 0);
  await assertEmpty(fake);
});

Deno.test("rate limits are retried with backoff; other errors carry Vast.ai's own message", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
  });
  const vast = provider(fake);
  fake.rateLimited = 2;
  assert.match(await vast.checkCredentials!(), /^account 4242/);
  assert.equal(
    fake.requests.filter((r) => r.path === "/users/current/").length,
    3,
  );
  // A bid under the minimum: the 400 names Vast.ai's reason.
  const low = provider(fake, [], { bid: 0.01 });
  const s = spec({
    allocation: "spot",
    accelerator: sky.accelerators.T4(),
  });
  const offer = (await low.offers(s))[0];
  const cluster = await low.prepare(s, offer);
  await assert.rejects(() => low.provision(cluster, 1), (error: Error) => {
    assert.ok(error instanceof sky.NoOffersError, String(error));
    assert.match(
      error.message,
      /offer 1006 \(bid\): 400 Bid 0\.01 is below the minimum bid 0\.08/,
    );
    return true;
  });
  await low.teardown(cluster);
  await assertEmpty(fake);
  const error = new HttpError("Vast.ai", "PUT", "/asks/1/", 410, "gone");
  assert.equal(error.message, "Vast.ai API: PUT /asks/1/ → 410: gone");
});

Deno.test("a failed create moves on to the next offer; teardown destroys the pool's instances and deletes its key", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }, {
      address: "10.0.0.2",
      user: "nobody",
    }],
  });
  fake.gone.add(1001);
  const vast = provider(fake);
  const s = spec({ accelerator: sky.accelerators.RTX_4090() });
  const offers = await vast.offers(s);
  const cluster = await vast.prepare(s, offers[0]);
  assert.equal(fake.sshKeys.length, 1);
  assert.match(fake.sshKeys[0], /^ssh-ed25519 \S+ skyward:sky-test-/);
  assert.ok(
    !JSON.stringify(cluster).includes("PRIVATE KEY"),
    "the private key is printed with the cluster",
  );
  const [instance] = await vast.provision(cluster, 1);
  assert.deepEqual(
    fake.calls("PUT", /^\/asks\//).map((c) => c.path),
    ["/asks/1001/", "/asks/1002/"],
  );
  const made = fake.live[0];
  assert.equal(String(made.id), instance.id);
  assert.equal(made.offerId, 1002);
  assert.equal(made.label, s.clusterId);
  // The CLI's runtype for --ssh --direct: the proxy exists as a fallback.
  assert.equal(made.request.runtype, "ssh_direc ssh_proxy");
  assert.equal(made.request.disk, 32);
  assert.equal(made.request.price, undefined);
  assert.equal(
    made.request.onstart,
    onstartScript({
      ttl: 600_000,
      baseUrl: fake.baseUrl,
    }),
  );
  assert.match(String(made.request.onstart), /skyward-ttl 600 /);
  // Pending while it loads, then running with its SSH address.
  assert.equal(
    (await vast.getInstance(cluster, instance.id))?.status,
    "pending",
  );
  await new Promise((r) => setTimeout(r, 400));
  const running = await vast.getInstance(cluster, instance.id);
  assert.equal(running?.status, "running");
  assert.deepEqual(
    running?.endpoint && running.endpoint.kind === "ssh"
      ? [running.endpoint.host, running.endpoint.port, running.endpoint.user]
      : [],
    ["10.0.0.1", 22, "root"],
  );
  await vast.teardown(cluster);
  assert.equal(await vast.getInstance(cluster, instance.id), undefined);
  await assertEmpty(fake);
});

Deno.test("SSH goes to the public address and mapped port, or through Vast.ai's proxy when asked or when there is no direct port", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
    bootMs: 0,
  });
  fake.proxy = { host: "ssh7.vast.test", port: 31022 };
  // Vast.ai's address fields can come with whitespace: they are trimmed.
  fake.paddedAddresses = true;
  const endpointOf = async (vast: sky.VastAIProvider) => {
    const s = spec();
    const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
    try {
      const [instance] = await vast.provision(cluster, 1);
      await new Promise((r) => setTimeout(r, 50));
      const found = await vast.getInstance(cluster, instance.id);
      assert.equal(found?.status, "running");
      const e = found!.endpoint!;
      return e.kind === "ssh" ? `${e.user}@${e.host}:${e.port}` : "";
    } finally {
      await vast.teardown(cluster);
    }
  };
  assert.equal(await endpointOf(provider(fake)), "root@10.0.0.1:22");
  assert.equal(
    await endpointOf(provider(fake, [], { ssh: "proxy" })),
    "root@ssh7.vast.test:31022",
  );
  assert.equal(
    (fake.calls("PUT", /^\/asks\//).at(-1)!.body as { runtype: string })
      .runtype,
    "ssh_proxy",
  );
  fake.directPorts = false;
  assert.equal(await endpointOf(provider(fake)), "root@ssh7.vast.test:31022");
  await assertEmpty(fake);
});

Deno.test("no capacity: ComputePool.start rejects with a NoOffersError listing the offers tried, and nothing is left", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
  });
  fake.noCapacity = true;
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: provider(fake),
        accelerator: sky.accelerators.RTX_4090(),
        allocation: "spot-if-available",
        console: "silent",
      }),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No instances available on Vast\.ai for 1x RTX 4090/,
      );
      assert.match(
        error.message,
        /offer 1001 \(bid\): 410 Instance type 1001 is no longer available/,
      );
      assert.match(error.message, /offer 1002 \(on-demand\): 410/);
      return true;
    },
  );
  // Spot (a bid) first, then on demand, on each offer in turn.
  const puts = fake.calls("PUT", /^\/asks\//).map((c) =>
    `${c.path} ${(c.body as { price?: number }).price ?? "on-demand"}`
  );
  assert.deepEqual(puts.slice(0, 4), [
    "/asks/1001/ 0.24",
    "/asks/1001/ on-demand",
    "/asks/1002/ 0.264",
    "/asks/1002/ on-demand",
  ]);
  await assertEmpty(fake);
});

Deno.test("cleanup() sweeps every Skyward pool's instances and keys; a dry run only lists them", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
  });
  const vast = provider(fake);
  const s = spec({ clusterId: "sky-orphan-1" });
  const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
  await vast.provision(cluster, 1);
  const dry = await vast.cleanup({ dryRun: true });
  assert.deepEqual(dry.clusters, ["sky-orphan-1"]);
  assert.equal(dry.instances.length, 1);
  assert.equal(dry.sshKeys.length, 1);
  assert.equal(fake.live.length, 1);
  const other = await vast.cleanup({ cluster: "sky-other" });
  assert.deepEqual(other.instances, []);
  const report = await vast.cleanup();
  assert.deepEqual(report.clusters, ["sky-orphan-1"]);
  await assertEmpty(fake);
});

Deno.test("a teardown that cannot finish says what may be left and how to sweep it", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
  });
  const vast = provider(fake);
  const s = spec({ clusterId: "sky-stuck-1" });
  const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
  const [instance] = await vast.provision(cluster, 1);
  fake.failDestroy = true;
  await assert.rejects(() => vast.teardown(cluster), (error: Error) => {
    assert.ok(error instanceof sky.ProvisioningError, String(error));
    assert.match(error.message, /^Vast\.ai teardown could not finish/);
    assert.match(
      error.message,
      new RegExp(`instance ${instance.id}: .*500: Internal error, try again`),
    );
    assert.match(
      error.message,
      /sky\.VastAI\(\)\.cleanup\(\{ cluster: "sky-stuck-1" \}\)/,
    );
    return true;
  });
  // The 500s were retried before giving up.
  assert.ok(fake.calls("DELETE", /^\/instances\//).length >= 5);
  fake.failDestroy = false;
  await vast.cleanup({ cluster: "sky-stuck-1" });
  await assertEmpty(fake);
});

Deno.test("teardown and cleanup page through /api/v1/instances/ with next_token, read a null list as none, and never use the deprecated v0 list", async () => {
  await using fake = await FakeVastAI.start({
    hosts: ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map((address) => ({
      address,
      user: "nobody",
    })),
  });
  fake.pageSize = 1;
  fake.nullLists = true;
  const vast = provider(fake);
  const s = spec({ clusterId: "sky-paged-1", nodes: 3 });
  const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
  const launched = await vast.provision(cluster, 3);
  assert.equal(launched.length, 3);
  // One instance per page: the sweep follows next_token to the last one.
  const dry = await vast.cleanup({ dryRun: true });
  assert.deepEqual(dry.instances.sort(), launched.map((i) => i.id).sort());
  const pages = fake.calls("GET", /^\/api\/v1\/instances\/$/);
  assert.equal(pages.length, 3);
  assert.equal(pages[0].query.get("limit"), "25");
  assert.equal(pages[0].query.get("after_token"), null);
  assert.ok(pages[1].query.get("after_token"));
  assert.deepEqual(JSON.parse(pages[0].query.get("order_by")!), [
    { col: "id", dir: "asc" },
  ]);
  // The pool's own listing asks for its label only.
  await vast.teardown(cluster);
  const own = fake.calls("GET", /^\/api\/v1\/instances\/$/).at(-1)!;
  assert.deepEqual(JSON.parse(own.query.get("select_filters")!), {
    label: { in: ["sky-paged-1"] },
  });
  await assertEmpty(fake);
  // Nothing left: the list is null, which is none, and the sweep finishes.
  assert.deepEqual(await vast.cleanup(), {
    clusters: [],
    instances: [],
    sshKeys: [],
  });
  assert.deepEqual(fake.calls("GET", /^\/instances\/$/), []);
  // One instance is read with owner=me, as the CLI does.
  await vast.getInstance(cluster, launched[0].id);
  assert.equal(
    fake.calls("GET", /^\/instances\/\d+\/$/).at(-1)!.query.get("owner"),
    "me",
  );
});

Deno.test("teardown destroys the instances the pool launched even when the listing fails, and says what may be left", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
  });
  const vast = provider(fake);
  const s = spec({ clusterId: "sky-unlisted-1" });
  const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
  const [instance] = await vast.provision(cluster, 1);
  fake.failListing = true;
  await assert.rejects(() => vast.teardown(cluster), (error: Error) => {
    assert.ok(error instanceof sky.ProvisioningError, String(error));
    assert.match(error.message, /^Vast\.ai teardown could not finish/);
    assert.match(error.message, /listing the instances: .*500/);
    assert.match(error.message, /cleanup\(\{ cluster: "sky-unlisted-1" \}\)/);
    return true;
  });
  // The instance the pool knew of is destroyed all the same, and its key gone.
  assert.deepEqual(
    fake.calls("DELETE", /^\/instances\//).map((c) => c.path),
    [`/instances/${instance.id}/`],
  );
  await assertEmpty(fake);
});

Deno.test("a destroy answered success: false is sent again (with the CLI's {} body), and reported with Vast.ai's msg when it never succeeds", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }],
  });
  const vast = provider(fake);
  const s = spec({ clusterId: "sky-refused-1" });
  const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
  const [first] = await vast.provision(cluster, 1);
  fake.refuseDestroys = 1;
  await vast.terminate(cluster, [first.id]);
  const deletes = fake.calls("DELETE", /^\/instances\//);
  assert.equal(deletes.length, 2);
  assert.ok(deletes.every((d) => JSON.stringify(d.body) === "{}"));
  assert.deepEqual(fake.live, []);

  const [second] = await vast.provision(cluster, 1);
  fake.refuseDestroys = Infinity;
  await assert.rejects(() => vast.teardown(cluster), (error: Error) => {
    assert.ok(error instanceof sky.ProvisioningError, String(error));
    assert.match(
      error.message,
      new RegExp(
        `instance ${second.id}: Vast\\.ai did not destroy instance ${second.id} \\(answered success: false\\): Instance is busy`,
      ),
    );
    return true;
  });
  assert.equal(fake.live.length, 1);
  fake.refuseDestroys = 0;
  await vast.cleanup({ cluster: "sky-refused-1" });
  await assertEmpty(fake);
});

Deno.test("a create whose connection drops after the instance is made is looked up, not sent again: exactly one instance exists", async () => {
  await using fake = await FakeVastAI.start({
    hosts: [{ address: "10.0.0.1", user: "nobody" }, {
      address: "10.0.0.2",
      user: "nobody",
    }],
  });
  const vast = provider(fake);
  const s = spec({ clusterId: "sky-dropped-1" });
  const cluster = await vast.prepare(s, (await vast.offers(s))[0]);
  fake.dropCreates = 1;
  const launched = await vast.provision(cluster, 1);
  assert.equal(fake.calls("PUT", /^\/asks\//).length, 1);
  assert.equal(fake.live.length, 1);
  assert.deepEqual(launched.map((i) => i.id), [String(fake.live[0].id)]);
  await vast.teardown(cluster);
  await assertEmpty(fake);
});

// ---------------------------------------------------------------------------
// The onstart script, in a real container

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
    `vastai_test.ts: the onstart test is ignored: no ${BASE_IMAGE} at ${DOCKER_HOST} ` +
      "(deno task docker:up, deno task image:build): " + image.out,
  );
}

Deno.test({
  name:
    "the onstart watchdog spares an instance with an SSH client, and destroys it with its own key once none is connected",
  ignore: !image.ok,
  fn: async () => {
    const id = crypto.randomUUID().slice(0, 8);
    const label = `skyward.cluster=sky-vast-onstart-${id}`;
    const script = onstartScript({
      ttl: 2_000,
      baseUrl: "https://console.vast.ai/api/v0",
    });
    // A curl that records how it was called, first on the PATH; a client
    // connected to port 22 (a listener standing in for sshd), as the pool's is.
    const setup = [
      "mkdir -p /stub",
      `printf '#!/bin/sh\\necho "$@" >>/tmp/curl.args\\n' >/stub/curl`,
      "chmod 755 /stub/curl",
      "export PATH=/stub:$PATH",
      `(perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 22, Listen => 1, ReuseAddr => 1) or die; $c = $s->accept; sleep 600' &)`,
      "sleep 0.3",
      `perl -MIO::Socket::INET -e '$c = IO::Socket::INET->new("127.0.0.1:22") or die; sleep 600' & echo $! >/tmp/client.pid`,
      'sh -c "$ONSTART"',
      "sleep 120",
    ].join("; ");
    const curlArgs = async () => {
      const read = await docker("exec", container, "cat", "/tmp/curl.args");
      return read.ok ? read.out : "";
    };
    let container = "";
    try {
      const run = await docker(
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        "--label",
        label,
        "-e",
        "CONTAINER_ID=7654321",
        "-e",
        "CONTAINER_API_KEY=per-instance-key",
        "-e",
        `ONSTART=${script}`,
        BASE_IMAGE,
        "sh",
        "-c",
        setup,
      );
      assert.ok(run.ok, run.out);
      container = run.out;
      // Connected: more than twice the ttl passes without a call.
      await new Promise((r) => setTimeout(r, 5_000));
      assert.equal(await curlArgs(), "");
      // The client goes: the instance asks to be destroyed.
      const kill = await docker(
        "exec",
        container,
        "sh",
        "-c",
        "kill $(cat /tmp/client.pid)",
      );
      assert.ok(kill.ok, kill.out);
      let args = "";
      for (let i = 0; i < 100 && !args; i++) {
        await new Promise((r) => setTimeout(r, 100));
        args = await curlArgs();
      }
      assert.equal(
        args.split("\n")[0],
        "-fsS -X DELETE -H Authorization: Bearer per-instance-key -H Content-Type: application/json -d {} https://console.vast.ai/api/v0/instances/7654321/",
      );
    } finally {
      if (container) await docker("rm", "-f", container);
    }
    const left = await docker("ps", "-aq", "--filter", `label=${label}`);
    assert.equal(left.out, "");
  },
});

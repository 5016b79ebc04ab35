/**
 * The Verda provider against the fake Verda (tests/fakes/verda.ts), which
 * speaks Verda's REST API with OAuth2 tokens and hands out the SSH rig's
 * hosts as instances: a whole run — API, SSH, bootstrap, task, teardown —
 * is real except for the cloud's front door.
 *
 * Tests that need no machine (offers, credentials, retries, the sweep)
 * always run; the end-to-end ones need the rig (tests/rig/rig.ts) and are
 * ignored with the reason printed without it — under `CI=true` that is a
 * failure instead. The scenarios every provider shares (hello on 2 nodes, a
 * spot instance discontinued mid-run, errors that still tear down, nothing
 * left) are the conformance suite's: tests/providers/verda_test.ts.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { FakeVerda, VERDA_TEST_CREDENTIALS } from "./fakes/verda.ts";
import { VERDA_MODELS } from "../providers/verda/offers.ts";
import { square } from "./fixtures/aws.ts";
import { requireRig, type RigHost } from "./rig/rig.ts";
import { cloudHosts, rigTester, verdaLeftovers } from "./clouds.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) {
  console.warn(`verda_test.ts: Verda end-to-end tests ignored: ${reason}`);
}

function provider(
  fake: FakeVerda,
  hosts: RigHost[] = [],
  options: sky.VerdaOptions = {},
) {
  return sky.Verda({
    baseUrl: fake.baseUrl,
    ...VERDA_TEST_CREDENTIALS,
    sshUser: (i) => hosts.find((h) => h.address === i.ip)?.user ?? "root",
    ...options,
  });
}

function spec(overrides: Partial<sky.ClusterSpec> = {}): sky.ClusterSpec {
  return {
    clusterId: `sky-test-${crypto.randomUUID().slice(0, 8)}`,
    nodes: 1,
    allocation: "spot-if-available",
    ...overrides,
  };
}

/** Asserts the fake holds nothing of any cluster: no instance, SSH key, script or volume, and no key on a host. */
async function assertEmpty(
  fake: FakeVerda,
  hosts: RigHost[] = [],
): Promise<void> {
  assert.deepEqual(await verdaLeftovers(fake, hosts), []);
}

const rigTest = rigTester(rig);

// ---------------------------------------------------------------------------
// Offers, credentials and errors: no machine needed

Deno.test("Verda offers: the cheapest fitting type first, priced spot and on-demand where it is available", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const verda = provider(fake);
  const cpu = await verda.offers(spec());
  assert.equal(cpu[0].instanceType, "CPU.4V.16G");
  assert.equal(cpu[0].spotPrice, 0.0279);
  assert.equal(cpu[0].onDemandPrice, 0.0798);
  assert.equal(cpu[0].region, "FIN-03"); // spot is in FIN-03 only
  assert.deepEqual(
    (cpu[0] as sky.VerdaOffer).onDemandLocations,
    ["FIN-01", "FIN-03"],
  );

  const h100 = await verda.offers(
    spec({ accelerator: sky.accelerators.H100() }),
  );
  assert.deepEqual(h100.map((o) => o.instanceType), [
    "1H100.80S.30V",
    "2H100.80S.60V",
  ]);
  assert.deepEqual(h100[0].accelerator, {
    name: "H100",
    count: 1,
    memoryGb: 80,
  });
  const twoH100 = await verda.offers(
    spec({ accelerator: sky.accelerators.H100({ count: 2 }) }),
  );
  assert.deepEqual(twoH100.map((o) => o.instanceType), ["2H100.80S.60V"]);
  // The catalog's memory variants pick the type: A100 40 GB vs 80 GB.
  const a100x40 = await verda.offers(
    spec({ accelerator: sky.accelerators.A100({ memory: "40GB" }) }),
  );
  assert.deepEqual(a100x40.map((o) => o.instanceType), ["1A100.22V"]);
  const a100x80 = await verda.offers(
    spec({ accelerator: sky.accelerators.A100() }),
  );
  assert.deepEqual(a100x80.map((o) => o.instanceType), ["8A100.176V"]);
  // Catalog names that differ from Verda's.
  const ada = await verda.offers(
    spec({ accelerator: sky.accelerators.RTX_6000_Ada() }),
  );
  assert.deepEqual(ada.map((o) => o.instanceType), ["1RTX6000ADA.10V"]);
  // On-demand only, in one location.
  const onDemand = await provider(fake, [], { location: "FIN-01" }).offers(
    spec({ allocation: "on-demand" }),
  );
  assert.equal(onDemand[0].region, "FIN-01");
  assert.equal(onDemand[0].spotPrice, undefined);
  const big = await verda.offers(spec({ vcpus: 8 }));
  assert.equal(big[0].instanceType, "CPU.8V.32G");
  const pinned = await provider(fake, [], { instanceType: "CPU.8V.32G" })
    .offers(spec());
  assert.deepEqual(pinned.map((o) => o.instanceType), ["CPU.8V.32G"]);
  // One token per provider served all its calls, concurrent ones included.
  assert.equal(fake.calls("POST /oauth2/token").length, 3);
});

Deno.test("every model Verda rents is named as in the accelerator catalog", () => {
  const catalog = new Set(sky.accelerators.catalog.map((m) => m.name));
  for (const name of Object.keys(VERDA_MODELS)) {
    assert.ok(catalog.has(name), `${name} is not a catalog model`);
  }
});

Deno.test("Verda offers: nothing fits → NoOffersError 'No instances available' saying why and what to try; half a GPU → ConfigError", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const verda = provider(fake);
  await assert.rejects(
    () => verda.offers(spec({ accelerator: sky.accelerators.RTX_4090() })),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No instances available on Verda for 1x RTX 4090 \(24GB\)/,
      );
      assert.match(error.message, /Verda rents no RTX 4090 \(it has V100/);
      assert.match(error.message, /another location/);
      return true;
    },
  );
  await assert.rejects(
    () =>
      verda.offers(
        spec({ allocation: "spot", accelerator: sky.accelerators.L40S() }),
      ),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /1L40S\.20V is sold out/.test(error.message) &&
      /'spot-if-available' to fall back to on-demand/.test(error.message),
  );
  await assert.rejects(
    () => verda.offers(spec({ maxHourlyCost: 0.01 })),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /costs \$0\.0279\/h, above maxHourlyCost \$0\.0100\/h/.test(
        error.message,
      ),
  );
  await assert.rejects(
    () =>
      verda.offers(
        spec({ accelerator: sky.accelerators.H100({ count: 0.5 }) }),
      ),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /rents whole GPUs, but the accelerator asks for 0\.5x H100/.test(
        error.message,
      ),
  );
  fake.noCapacity = true;
  await assert.rejects(
    () => verda.offers(spec()),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /nothing is available now \(.*CPU\.4V\.16G is sold out/.test(
        error.message,
      ),
  );
});

Deno.test("missing Verda credentials: ComputePool.start rejects with a ConfigError naming VERDA_CLIENT_ID and VERDA_CLIENT_SECRET", async () => {
  await using fake = await FakeVerda.start();
  const saved = ["VERDA_CLIENT_ID", "VERDA_CLIENT_SECRET"].map((name) =>
    [name, Deno.env.get(name)] as const
  );
  for (const [name] of saved) Deno.env.delete(name);
  try {
    await assert.rejects(
      () =>
        sky.ComputePool.start({
          provider: sky.Verda({ baseUrl: fake.baseUrl }),
          console: "silent",
        }),
      (error: Error) => {
        assert.ok(error instanceof sky.ConfigError, String(error));
        assert.match(
          error.message,
          /^No Verda credentials found \(VERDA_CLIENT_ID and VERDA_CLIENT_SECRET not set\): set VERDA_CLIENT_ID and VERDA_CLIENT_SECRET/,
        );
        assert.match(
          error.message,
          /sky\.Verda\(\{ clientId, clientSecret \}\)/,
        );
        return true;
      },
    );
    // From the environment: only the secret missing.
    Deno.env.set("VERDA_CLIENT_ID", VERDA_TEST_CREDENTIALS.clientId);
    await assert.rejects(
      () => sky.Verda({ baseUrl: fake.baseUrl }).offers(spec()),
      (error: Error) =>
        error instanceof sky.ConfigError &&
        /\(VERDA_CLIENT_SECRET not set\)/.test(error.message),
    );
    assert.equal(fake.requests.length, 0);
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});

Deno.test("a wrong Verda secret is a ConfigError with Verda's message, and nothing is left behind", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: provider(fake, [], { clientSecret: "not-the-secret" }),
        console: "silent",
      }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(
        error.message,
        /^Verda refused the credentials \(401: Invalid client credentials\)/,
      );
      assert.match(error.message, /VERDA_CLIENT_ID and VERDA_CLIENT_SECRET/);
      return true;
    },
  );
  // Refused once, not retried.
  assert.equal(fake.calls("POST /oauth2/token").length, 1);
  await assertEmpty(fake);
});

Deno.test("Verda tokens: refreshed with the refresh token before they expire, fetched anew after a 401", async () => {
  // A token of 31 s is due for refresh 30 s before it ends: after 1 s.
  await using fake = await FakeVerda.start({ tokenLifetime: 31 });
  const verda = provider(fake);
  assert.equal(await verda.checkCredentials!(), "balance 100.50 usd");
  await new Promise((r) => setTimeout(r, 1_100));
  await verda.checkCredentials!();
  const grants = () =>
    fake.calls("POST /oauth2/token").map((c) =>
      (c.body as { grant_type: string }).grant_type
    );
  assert.deepEqual(grants(), ["client_credentials", "refresh_token"]);
  // Every token revoked: the 401 drops it and the call goes through with a new one.
  fake.expireTokens();
  await verda.checkCredentials!();
  assert.deepEqual(grants().length, 3);
  assert.deepEqual(
    fake.requests.filter((r) => r.path === "/balance").map((r) => r.status),
    [200, 200, 401, 200],
  );
});

Deno.test("Verda rate limits are retried; a 4xx carries Verda's own message", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const verda = provider(fake, [], { image: "windows-95" });
  fake.throttle(2);
  const offers = await verda.offers(spec());
  assert.equal(offers[0].instanceType, "CPU.4V.16G");
  assert.equal(fake.requests.filter((r) => r.status === 429).length, 2);
  const cluster = await verda.prepare(spec(), offers[0]);
  try {
    await assert.rejects(
      () => verda.provision(cluster, 1),
      (error: Error) =>
        error.name === "HttpError" &&
        error.message ===
          "Verda API: POST /instances → 400: Invalid image windows-95",
    );
  } finally {
    await verda.teardown(cluster);
  }
  await assertEmpty(fake);
});

Deno.test("Verda cleanup() sweeps every Skyward cluster's instances, keys and scripts; a dry run only lists them", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const verda = provider(fake);
  const offer = (await verda.offers(spec()))[0];
  const cluster = await verda.prepare(
    spec({ clusterId: "sky-orphan-1" }),
    offer,
  );
  assert.match(cluster.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  assert.ok(
    !JSON.stringify(cluster).includes("PRIVATE KEY"),
    "the private key is printed with the cluster",
  );
  assert.deepEqual(fake.sshKeys.map((k) => k.name), ["skyward-sky-orphan-1"]);
  assert.match(fake.sshKeys[0].key, /^ssh-ed25519 /);
  assert.deepEqual(fake.scripts.map((s) => s.name), ["skyward-sky-orphan-1"]);
  assert.match(fake.scripts[0].script, /skyward-ttl 600/);
  fake.addSshKey(
    "skyward-laptop",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFBKT/tU+MVbogE/9Ay5q88loOfRsxZs9xn7NMzF6mje me@laptop",
  );
  const [instance] = await verda.provision(cluster, 1);
  // The address is known when provision returns, for the peers list.
  assert.equal(instance.privateAddress, "127.0.0.1");
  const osVolume = fake.instances[0].osVolumeId;
  assert.ok(osVolume);
  const dry = await verda.cleanup({ dryRun: true });
  assert.deepEqual(dry.clusters, ["sky-orphan-1"]);
  assert.deepEqual(dry.instances, [instance.id]);
  assert.equal(fake.instances.length, 1);
  const none = await verda.cleanup({ olderThan: 3_600_000 });
  assert.deepEqual(none.instances, []);
  assert.equal(fake.instances.length, 1);
  const report = await verda.cleanup();
  assert.deepEqual(report.instances, [instance.id]);
  assert.equal(report.sshKeys.length, 1);
  assert.equal(report.scripts.length, 1);
  // The user's own key, although its name starts alike, is kept.
  assert.deepEqual(fake.sshKeys.map((k) => k.name), ["skyward-laptop"]);
  fake.sshKeys.splice(0);
  // `delete_permanently` applies to the volumes listed with it: the OS
  // volume is listed, so it is deleted rather than put in the trash.
  const deleted = fake.calls("PUT /instances")[0].body;
  assert.deepEqual(deleted, {
    action: "delete",
    id: [instance.id],
    volume_ids: [fake.instances[0]?.osVolumeId ?? osVolume],
    delete_permanently: true,
  });
  await assertEmpty(fake);
});

Deno.test("sky.Verda rejects bad options with a ConfigError naming the option", () => {
  assert.throws(
    () => sky.Verda({ location: "finland" }),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /location/.test(error.message) &&
      /FIN-01/.test(error.message),
  );
});

/** One provisioned instance of a fresh cluster, and the provider that made it. */
async function provisionOne(fake: FakeVerda, options: sky.VerdaOptions = {}) {
  const verda = provider(fake, [], options);
  const s = spec();
  const cluster = await verda.prepare(s, (await verda.offers(s))[0]);
  const instances = await verda.provision(cluster, 1);
  return { verda, cluster, instances };
}

Deno.test("a Verda create answered with the whole instance as JSON is deployed, not refused (Go SDK instances.go)", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  fake.createAnswer = "json";
  const { verda, cluster, instances } = await provisionOne(fake);
  try {
    assert.equal(fake.instances.length, 1);
    assert.deepEqual(instances.map((i) => i.id), [fake.instances[0].id]);
    assert.equal(instances[0].privateAddress, "127.0.0.1");
    assert.equal(fake.calls("POST /instances").length, 1);
  } finally {
    await verda.teardown(cluster);
  }
  await assertEmpty(fake);
});

Deno.test("a Verda create that succeeds and then drops the connection leaves exactly one instance, found by its hostname", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  fake.dropAfterCreate = 1;
  const { verda, cluster, instances } = await provisionOne(fake);
  try {
    assert.equal(fake.instances.length, 1);
    assert.deepEqual(instances.map((i) => i.id), [fake.instances[0].id]);
    assert.equal(fake.calls("POST /instances").length, 1);
    assert.equal(fake.dropAfterCreate, 0);
  } finally {
    await verda.teardown(cluster);
  }
  await assertEmpty(fake);
});

Deno.test("a Verda SSH key or script create whose answer is lost is found by its name, not registered twice", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const verda = provider(fake);
  const s = spec();
  const offer = (await verda.offers(s))[0];
  // The key is stored, then the fake answers 500: whether it took effect
  // is unknown to the client.
  const original = fake.sshKeys.push.bind(fake.sshKeys);
  let lost = 1;
  fake.sshKeys.push = (...keys) => {
    const n = original(...keys);
    if (lost-- > 0) throw new Error("answer lost after the key was stored");
    return n;
  };
  const cluster = await verda.prepare(s, offer);
  try {
    assert.deepEqual(fake.sshKeys.map((k) => k.name), [
      `skyward-${s.clusterId}`,
    ]);
    assert.equal(cluster.sshKeyId, fake.sshKeys[0].id);
    assert.equal(fake.calls("POST /sshkeys").length, 1);
    assert.equal(fake.scripts.length, 1);
  } finally {
    await verda.teardown(cluster);
  }
  await assertEmpty(fake);
});

Deno.test("a Verda instance that goes to no_capacity after its create is deleted and the next location tried", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  fake.noCapacityAfterCreate.add("spot FIN-03");
  fake.noCapacityAfterCreate.add("on-demand FIN-01");
  const { verda, cluster, instances } = await provisionOne(fake);
  try {
    const live = fake.instances.filter((i) => i.status !== "deleting");
    assert.deepEqual(
      live.map((i) => `${i.isSpot ? "spot" : "on-demand"} ${i.location}`),
      ["on-demand FIN-03"],
    );
    assert.deepEqual(instances.map((i) => i.id), [live[0].id]);
    // The two that got no capacity were deleted; they had no OS volume yet,
    // so none is listed (`null`, as both SDKs send by default).
    const deletes = fake.calls("PUT /instances").map((c) =>
      c.body as { action: string; id: string[]; volume_ids: unknown }
    );
    assert.equal(deletes.length, 2);
    for (const body of deletes) {
      assert.equal(body.action, "delete");
      assert.equal(body.volume_ids, null);
      assert.notDeepEqual(body.id, [live[0].id]);
    }
    assert.equal(fake.calls("POST /instances").length, 3);
  } finally {
    await verda.teardown(cluster);
  }
  await assertEmpty(fake);
});

Deno.test("no_capacity after every create: NoOffersError naming each location, and nothing left", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  for (const full of ["spot FIN-03", "on-demand FIN-01", "on-demand FIN-03"]) {
    fake.noCapacityAfterCreate.add(full);
  }
  const verda = provider(fake);
  const s = spec();
  const cluster = await verda.prepare(s, (await verda.offers(s))[0]);
  try {
    await assert.rejects(
      () => verda.provision(cluster, 1),
      (error: Error) =>
        error instanceof sky.NoOffersError &&
        /spot in FIN-03: instance \S+ went to no_capacity after it was created/
          .test(error.message) &&
        /on-demand in FIN-03/.test(error.message),
    );
  } finally {
    await verda.teardown(cluster);
  }
  await assertEmpty(fake);
});

Deno.test("teardown right after provision waits out Verda's refusal to delete a provisioning instance", async () => {
  // Provisioning lasts 1.5 s; provision returns once the address is known,
  // which is when provisioning starts.
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
    bootMs: 1_500,
  });
  const { verda, cluster } = await provisionOne(fake);
  assert.equal(fake.instances[0].status, "provisioning");
  await verda.teardown(cluster);
  const deletes = fake.requests.filter((r) =>
    r.method === "PUT" && r.path === "/instances"
  );
  assert.equal(deletes[0].status, 400);
  assert.equal(deletes.at(-1)!.status, 202);
  await assertEmpty(fake);
});

Deno.test("a Verda machine given back while provisioning is deleted once Verda allows it", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
    bootMs: 1_500,
  });
  const { verda, cluster, instances } = await provisionOne(fake);
  assert.equal(fake.instances[0].status, "provisioning");
  await verda.terminate(cluster, instances.map((i) => i.id));
  assert.deepEqual(fake.instances.map((i) => i.status), ["deleting"]);
  assert.equal(fake.volumes.length, 0);
  await verda.teardown(cluster);
  await assertEmpty(fake);
});

Deno.test("Verda answers with null where its SDKs accept it: empty lists, no spot price, no GPU memory", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  fake.nulls = true;
  const verda = provider(fake);
  // Empty lists answered as null: nothing to sweep.
  assert.deepEqual(await verda.cleanup(), {
    clusters: [],
    instances: [],
    sshKeys: [],
    scripts: [],
  });
  const cpu = await verda.offers(spec());
  assert.equal(cpu[0].instanceType, "CPU.4V.16G");
  // A null spot price is "spot does not sell it".
  await assert.rejects(
    () =>
      verda.offers(
        spec({ allocation: "spot", accelerator: sky.accelerators.L40S() }),
      ),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /1L40S\.20V is sold out/.test(error.message),
  );
  fake.noCapacity = true;
  await assert.rejects(
    () => verda.offers(spec({ allocation: "on-demand" })),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /nothing is available now/.test(error.message),
  );
});

Deno.test("Verda prices are asked in USD, so that maxHourlyCost compares with them", async () => {
  await using fake = await FakeVerda.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  // Without a currency, the fake prices in euros (90 cents to the dollar).
  assert.equal(fake.defaultCurrency, "eur");
  const offers = await provider(fake).offers(spec({ maxHourlyCost: 0.08 }));
  assert.equal(offers[0].onDemandPrice, 0.0798);
  assert.deepEqual(
    fake.calls("GET /instance-types").map((c) => c.query.currency),
    ["usd"],
  );
  // Prices in another currency all the same are refused, not compared.
  fake.forceCurrency = "eur";
  await assert.rejects(
    () => provider(fake).offers(spec()),
    (error: Error) =>
      error instanceof sky.ProvisioningError &&
      /priced CPU\.4V\.16G in eur although USD was asked/.test(error.message),
  );
});

// ---------------------------------------------------------------------------
// End to end on the rig

rigTest(
  "Verda creates whose answers are lost: exactly one instance per node, and the pool works",
  async (hosts) => {
    await using fake = await FakeVerda.start({ hosts: cloudHosts(hosts) });
    fake.dropAfterCreate = 2;
    {
      await using pool = await sky.ComputePool.start({
        provider: provider(fake, hosts),
        nodes: 2,
        console: "silent",
      });
      assert.deepEqual(await pool.run(sky.gather(square(2), square(3))), [
        4,
        9,
      ]);
      assert.equal(fake.instances.length, 2);
      assert.equal(fake.calls("POST /instances").length, 2);
    }
    await assertEmpty(fake, hosts);
  },
);

rigTest(
  "no Verda capacity where the availability said there was: the next location, then on-demand",
  async (hosts) => {
    await using fake = await FakeVerda.start({ hosts: cloudHosts(hosts) });
    fake.full.add("spot FIN-03");
    fake.full.add("on-demand FIN-01");
    {
      await using pool = await sky.ComputePool.start({
        provider: provider(fake, hosts),
        console: "silent",
      });
      assert.equal(await pool.run(square(7)), 49);
      assert.deepEqual(
        fake.instances.map((i) =>
          `${i.isSpot ? "spot" : "on-demand"} ${i.location}`
        ),
        ["on-demand FIN-03"],
      );
    }
    const tried = fake.calls("POST /instances").map((c) => {
      const b = c.body as { is_spot: boolean; location_code: string };
      return `${b.is_spot ? "spot" : "on-demand"} ${b.location_code}`;
    });
    assert.deepEqual(tried, [
      "spot FIN-03",
      "on-demand FIN-01",
      "on-demand FIN-03",
    ]);
    await assertEmpty(fake, hosts);
  },
);

rigTest(
  "no Verda capacity anywhere: NoOffersError 'No instances available' naming the type and locations, and nothing left",
  async (hosts) => {
    await using fake = await FakeVerda.start({ hosts: cloudHosts(hosts) });
    for (
      const full of ["spot FIN-03", "on-demand FIN-01", "on-demand FIN-03"]
    ) {
      fake.full.add(full);
    }
    await assert.rejects(
      () =>
        sky.ComputePool.start({
          provider: provider(fake, hosts),
          console: "silent",
        }),
      (error: Error) => {
        assert.ok(error instanceof sky.NoOffersError, String(error));
        assert.match(
          error.message,
          /^No instances available on Verda for CPU\.4V\.16G \(spot, then on-demand\)/,
        );
        assert.match(
          error.message,
          /spot in FIN-03: Not enough resources to deploy a CPU instance type CPU\.4V\.16G in FIN-03/,
        );
        assert.match(error.message, /on-demand in FIN-01/);
        assert.match(error.message, /another location/);
        return true;
      },
    );
    // Registered at each offer's prepare (the pool tries the next offer
    // too), each removed when its offer failed.
    const registered = fake.calls("POST /sshkeys").length;
    assert.ok(registered >= 1);
    assert.equal(
      fake.requests.filter((r) =>
        r.method === "DELETE" && r.path.startsWith("/sshkeys/")
      ).length,
      registered,
    );
    await assertEmpty(fake, hosts);
  },
);

Deno.test({
  name: "the rig is released by the file that brought it up",
  ignore: !rig?.created,
  fn: () => rig!.release(),
});

/**
 * The AWS provider against the fake EC2 (tests/fakes/ec2.ts), which speaks
 * EC2's Query/XML protocol, checks SigV4 signatures and hands out the SSH
 * rig's hosts as instances: a whole run — API, SSH, bootstrap, task,
 * teardown — is real except for the cloud's front door.
 *
 * Tests that need no machine (offers, errors, the sweep) always run; the
 * end-to-end ones need the rig (tests/rig/rig.ts) and are ignored with the
 * reason printed without it — under `CI=true` that is a failure instead.
 * The scenarios every provider shares (hello on 2 nodes, a spot machine
 * taken back mid-run, errors that still tear down, nothing left) are the
 * conformance suite's: tests/providers/aws_test.ts.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  type FakeEc2,
  FakeEc2 as Fake,
  TEST_CREDENTIALS,
} from "./fakes/ec2.ts";
import { FAKE_ENV, type FakeEnv, square } from "./fixtures/aws.ts";
import { requireRig, type RigHost } from "./rig/rig.ts";
import { cloudHosts, ec2Leftovers, rigTester } from "./clouds.ts";

// The SDK's credential chain must never reach for the instance metadata service here.
Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`aws_test.ts: AWS end-to-end tests ignored: ${reason}`);

const RIG_CIDR = "10.213.0.0/24";

function provider(
  fake: FakeEc2,
  hosts: RigHost[] = [],
  options: sky.AwsOptions = {},
) {
  return sky.AWS({
    endpoint: fake.endpoint,
    region: fake.region,
    credentials: TEST_CREDENTIALS,
    allowSshFrom: [RIG_CIDR],
    sshUser: (i) =>
      hosts.find((h) => h.address === i.publicIp)?.user ?? "ubuntu",
    ...options,
  });
}

/** Asserts the fake holds nothing of any cluster: no live instance, group or key pair. */
async function assertEmpty(
  fake: FakeEc2,
  hosts: RigHost[] = [],
): Promise<void> {
  assert.deepEqual(await ec2Leftovers(fake, hosts), []);
}

const rigTest = rigTester(rig);

function spec(overrides: Partial<sky.ClusterSpec> = {}): sky.ClusterSpec {
  return {
    clusterId: `sky-test-${crypto.randomUUID().slice(0, 8)}`,
    nodes: 1,
    allocation: "spot-if-available",
    ...overrides,
  };
}

// ---------------------------------------------------------------------------
// Offers and errors: no machine needed

Deno.test("offers: the cheapest fitting instance type comes first, priced spot and on-demand", async () => {
  await using fake = await Fake.start();
  const aws = provider(fake);
  const cpu = await aws.offers(spec());
  assert.equal(cpu[0].instanceType, "t3.medium");
  assert.equal(cpu[0].spotPrice, 0.0125);
  assert.equal(cpu[0].onDemandPrice, 0.0416);
  assert.ok(cpu.every((o) => o.architecture === "x86_64"));

  const t4 = await aws.offers(spec({ accelerator: sky.accelerators.T4() }));
  assert.deepEqual(t4.map((o) => o.instanceType), [
    "g4dn.xlarge",
    "g4dn.12xlarge",
  ]);
  assert.deepEqual(t4[0].accelerator, { name: "T4", count: 1, memoryGb: 15 });

  const fourT4 = await aws.offers(
    spec({ accelerator: sky.accelerators.T4({ count: 4 }) }),
  );
  assert.deepEqual(fourT4.map((o) => o.instanceType), ["g4dn.12xlarge"]);

  const a100 = await aws.offers(
    spec({ accelerator: sky.accelerators.A100({ memory: "40GB" }) }),
  );
  assert.deepEqual(a100.map((o) => o.instanceType), ["p4d.24xlarge"]);
  const a100x80 = await aws.offers(
    spec({ accelerator: sky.accelerators.A100() }),
  );
  assert.deepEqual(a100x80.map((o) => o.instanceType), ["p4de.24xlarge"]);

  const trainium = await aws.offers(
    spec({ accelerator: sky.accelerators.Trainium1() }),
  );
  assert.deepEqual(trainium.map((o) => o.instanceType), ["trn1.2xlarge"]);

  const arm = await aws.offers(spec({ architecture: "arm64" }));
  assert.deepEqual(arm.map((o) => o.instanceType), ["t4g.medium"]);

  const big = await aws.offers(spec({ vcpus: 4, memoryGb: 16 }));
  assert.equal(big[0].instanceType, "m5.xlarge");

  const onDemand = await aws.offers(
    spec({ allocation: "on-demand", accelerator: sky.accelerators.T4() }),
  );
  assert.equal(onDemand[0].instanceType, "g4dn.xlarge");
  const pinned = await provider(fake, [], { instanceType: "c5.xlarge" }).offers(
    spec(),
  );
  assert.deepEqual(pinned.map((o) => o.instanceType), ["c5.xlarge"]);
});

Deno.test("offers: nothing fits → NoOffersError 'No instances available' naming region, what was asked and the hint", async () => {
  await using fake = await Fake.start();
  const aws = provider(fake);
  await assert.rejects(
    () =>
      aws.offers(
        spec({ allocation: "spot", accelerator: sky.accelerators.H100() }),
      ),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No instances available on AWS in us-east-1 for 1x H100 \(80GB\)/,
      );
      assert.match(error.message, /no p5\.48xlarge has a spot market/);
      assert.match(error.message, /another region/);
      assert.match(error.message, /'spot-if-available'/);
      return true;
    },
  );
  await assert.rejects(
    () => aws.offers(spec({ maxHourlyCost: 0.01 })),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /above maxHourlyCost \$0\.0100\/h/.test(error.message),
  );
  await assert.rejects(
    () => aws.offers(spec({ accelerator: sky.accelerators.RTX_4090() })),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      /EC2 has no instance type with RTX 4090/.test(error.message),
  );
});

Deno.test("requests are SigV4-signed: a wrong secret is a ConfigError about the credentials", async () => {
  await using fake = await Fake.start();
  const aws = provider(fake, [], {
    credentials: {
      accessKeyId: TEST_CREDENTIALS.accessKeyId,
      secretAccessKey: "not-the-secret",
    },
  });
  await assert.rejects(() => aws.offers(spec()), (error: Error) => {
    assert.ok(error instanceof sky.ConfigError, String(error));
    assert.match(error.message, /AWS rejected the credentials \(AuthFailure\)/);
    assert.match(error.message, /signature/);
    assert.match(error.message, /AWS_ACCESS_KEY_ID/);
    return true;
  });
  assert.ok(fake.requests.length > 0);
});

Deno.test("missing credentials: ComputePool.start rejects with a ConfigError naming the variables to set", async () => {
  await using fake = await Fake.start();
  const home = await Deno.makeTempDir({ prefix: "skyward-aws-home-" });
  try {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(Deno.env.toObject())) {
      if (
        !/^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|PROFILE|DEFAULT_PROFILE|ROLE_ARN|WEB_IDENTITY_TOKEN_FILE|CONTAINER_)/
          .test(key)
      ) {
        env[key] = value;
      }
    }
    const denoDir = JSON.parse(
      new TextDecoder().decode(
        (await new Deno.Command(Deno.execPath(), {
          args: ["info", "--json"],
          stdout: "piped",
        }).output()).stdout,
      ),
    ).denoDir as string;
    Object.assign(env, {
      HOME: home,
      DENO_DIR: denoDir,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_SHARED_CREDENTIALS_FILE: `${home}/none`,
      AWS_CONFIG_FILE: `${home}/none`,
      [FAKE_ENV]: JSON.stringify(
        {
          endpoint: fake.endpoint,
          region: fake.region,
          users: {},
        } satisfies FakeEnv,
      ),
    });
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./fixtures/aws.ts", import.meta.url).pathname,
        "start",
      ],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const result = JSON.parse(stdout.trim().split("\n").pop() ?? "{}");
    assert.equal(
      result.name,
      "ConfigError",
      stdout + new TextDecoder().decode(output.stderr),
    );
    assert.match(result.message, /No AWS credentials found/);
    assert.match(result.message, /AWS_ACCESS_KEY_ID/);
    assert.match(result.message, /AWS_SECRET_ACCESS_KEY/);
    assert.match(result.message, /AWS_DEFAULT_REGION/);
    assert.match(result.message, /profile/);
    // The child never got as far as signing a request.
    assert.equal(fake.requests.length, 0);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("unauthorised RunInstances: a ConfigError naming ec2:RunInstances, and nothing left behind", async () => {
  await using fake = await Fake.start();
  fake.deny("ec2:RunInstances");
  await assert.rejects(
    () =>
      sky.ComputePool.start({ provider: provider(fake), console: "silent" }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(error.message, /AWS denied ec2:RunInstances in us-east-1/);
      assert.match(error.message, /Permission denied/);
      return true;
    },
  );
  await assertEmpty(fake);
});

Deno.test("iam:PassRole denied for an instance profile: a ConfigError naming iam:PassRole", async () => {
  await using fake = await Fake.start();
  fake.deny("iam:PassRole");
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider: provider(fake, [], { instanceProfile: "skyward-nodes" }),
        console: "silent",
      }),
    (error: Error) =>
      error instanceof sky.ConfigError &&
      /AWS denied iam:PassRole/.test(error.message),
  );
  assert.equal(fake.calls("RunInstances")[0].IamInstanceProfile && true, true);
  await assertEmpty(fake);
});

Deno.test("no capacity anywhere: NoOffersError 'No instances available' naming region and type, and nothing left", async () => {
  await using fake = await Fake.start();
  fake.noCapacity = true;
  await assert.rejects(
    () =>
      sky.ComputePool.start({ provider: provider(fake), console: "silent" }),
    (error: Error) => {
      assert.ok(error instanceof sky.NoOffersError, String(error));
      assert.match(
        error.message,
        /^No instances available on AWS in us-east-1 for t3\.medium \(spot, then on-demand\)/,
      );
      assert.match(
        error.message,
        /spot in us-east-1b: InsufficientInstanceCapacity/,
      );
      assert.match(
        error.message,
        /on-demand in us-east-1a: InsufficientInstanceCapacity/,
      );
      assert.match(error.message, /another region/);
      // The next offers (instance types) were tried too, each with a
      // cluster of its own, torn down after it.
      assert.match(
        error.message,
        /no capacity for the \d+ next offer\(s\) either: aws t3\.large/,
      );
      return true;
    },
  );
  // Spot was tried cheapest zone first, then on-demand in every zone.
  assert.deepEqual(
    fake.calls("RunInstances").filter((p) => p.InstanceType === "t3.medium")
      .map((p) =>
        `${
          (p.InstanceMarketOptions as { MarketType?: string })?.MarketType ??
            "on-demand"
        }`
      ),
    ["spot", "spot", "on-demand", "on-demand"],
  );
  await assertEmpty(fake);
});

Deno.test("cleanup() sweeps the resources of every Skyward cluster by tag; a dry run only lists them", async () => {
  await using fake = await Fake.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const aws = provider(fake);
  const offer = (await aws.offers(spec()))[0];
  const cluster = await aws.prepare(spec({ clusterId: "sky-orphan-1" }), offer);
  // prepare: a group allowing SSH from the client and everything within itself, an imported ed25519 key.
  const ingress = fake.calls("AuthorizeSecurityGroupIngress")[0] as {
    GroupId: string;
    IpPermissions: Record<string, Record<string, unknown>>;
  };
  const [ssh, internal] = Object.values(ingress.IpPermissions);
  assert.deepEqual([ssh.IpProtocol, ssh.FromPort, ssh.ToPort], [
    "tcp",
    "22",
    "22",
  ]);
  assert.equal(
    (ssh.IpRanges as Record<string, { CidrIp: string }>)["1"].CidrIp,
    RIG_CIDR,
  );
  assert.equal(internal.IpProtocol, "-1");
  assert.equal(
    (internal.Groups as Record<string, { GroupId: string }>)["1"].GroupId,
    ingress.GroupId,
  );
  assert.equal(cluster.keyName, "skyward-sky-orphan-1");
  assert.match(cluster.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  assert.ok(
    !JSON.stringify(cluster).includes("PRIVATE KEY"),
    "the private key is printed with the cluster",
  );
  await aws.provision(cluster, 1);
  assert.equal(fake.live.length, 1);
  const dry = await aws.cleanup({ dryRun: true });
  assert.deepEqual(dry.clusters, ["sky-orphan-1"]);
  assert.equal(dry.instances.length, 1);
  assert.equal(fake.live.length, 1);
  const none = await aws.cleanup({ olderThan: 3_600_000 });
  assert.deepEqual(none.instances, []);
  const report = await aws.cleanup();
  assert.deepEqual(report.securityGroups.length, 1);
  assert.deepEqual(report.keyPairs, ["skyward-sky-orphan-1"]);
  await assertEmpty(fake);
});

Deno.test("the CLI's 'cleanup --provider aws' sweeps a region", async () => {
  await using fake = await Fake.start({
    hosts: [{ address: "127.0.0.1", user: "nobody" }],
  });
  const aws = provider(fake);
  const cluster = await aws.prepare(
    spec({ clusterId: "sky-orphan-2" }),
    (await aws.offers(spec()))[0],
  );
  await aws.provision(cluster, 1);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cli.ts", import.meta.url).pathname,
      "cleanup",
      "--provider",
      "aws",
      "--region",
      fake.region,
      "--endpoint",
      fake.endpoint,
    ],
    env: {
      AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: "true",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.ok(output.success, stdout + new TextDecoder().decode(output.stderr));
  assert.match(stdout, /sky-orphan-2/);
  assert.match(stdout, /1 instance/);
  await assertEmpty(fake);
});

Deno.test("deno task aws:prices refreshes the price table from the Price List API", async () => {
  await using fake = await Fake.start();
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../providers/aws/refresh_prices.ts", import.meta.url).pathname,
        "--regions",
        "us-east-1,eu-west-1",
        "--endpoint",
        fake.endpoint,
        "--out",
        out,
      ],
      env: {
        AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
        AWS_EC2_METADATA_DISABLED: "true",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const table = JSON.parse(await Deno.readTextFile(out));
    assert.equal(table.asOf, new Date().toISOString().slice(0, 10));
    assert.equal(table.regions["us-east-1"]["g4dn.xlarge"], 0.526);
    assert.equal(table.regions["eu-west-1"]["t3.medium"], 0.0416);
    assert.ok(fake.requests.some((r) => r.service === "pricing"));
  } finally {
    await Deno.remove(out);
  }
});

// ---------------------------------------------------------------------------
// End to end on the rig

rigTest(
  "a spot capacity error falls back to on-demand (and an unreadable console means trust on first use)",
  async (hosts) => {
    await using fake = await Fake.start({ hosts: cloudHosts(hosts) });
    fake.noSpotCapacity = true;
    fake.deny("ec2:GetConsoleOutput");
    {
      await using pool = await sky.ComputePool.start({
        provider: provider(fake, hosts),
        console: "silent",
      });
      assert.equal(await pool.run(square(7)), 49);
      assert.deepEqual(fake.live.map((i) => i.spot), [false]);
    }
    const markets = fake.calls("RunInstances").map((p) =>
      (p.InstanceMarketOptions as { MarketType?: string } | undefined)
        ?.MarketType ?? "on-demand"
    );
    assert.deepEqual(markets, ["spot", "spot", "on-demand"]);
    await assertEmpty(fake, hosts);
  },
);

Deno.test({
  name: "the rig is released by the file that brought it up",
  ignore: !rig?.created,
  fn: () => rig!.release(),
});

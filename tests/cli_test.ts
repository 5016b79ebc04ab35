/**
 * The command line's `offers` and `providers` against the fake clouds: the
 * real providers, pointed at local fakes of each cloud's API.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  type CloudFlags,
  CLOUDS,
  main,
  type OfferRow,
  type ProviderRow,
} from "../cli.ts";
import { FakeEc2, TEST_CREDENTIALS } from "./fakes/ec2.ts";
import { FakeRunPod, TEST_RUNPOD_KEY } from "./fakes/runpod.ts";
import { FakeVastAI, TEST_VAST_KEY } from "./fakes/vastai.ts";
import { FakeVerda, VERDA_TEST_CREDENTIALS } from "./fakes/verda.ts";

/** Runs the command line in this process, capturing what it prints. */
async function run(
  args: string[],
  clouds: Record<string, (flags: CloudFlags) => sky.Provider<any>>,
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(args, { clouds });
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function fakes() {
  const ec2 = await FakeEc2.start();
  const runpod = await FakeRunPod.start();
  const vast = await FakeVastAI.start();
  const verda = await FakeVerda.start();
  const clouds = (keys: { runpod?: string; vast?: string } = {}) => ({
    aws: () =>
      sky.AWS({
        endpoint: ec2.endpoint,
        region: ec2.region,
        credentials: TEST_CREDENTIALS,
      }),
    runpod: () =>
      sky.RunPod({
        baseUrl: runpod.baseUrl,
        apiKey: keys.runpod ?? TEST_RUNPOD_KEY,
      }),
    vastai: () =>
      sky.VastAI({ baseUrl: vast.baseUrl, apiKey: keys.vast ?? TEST_VAST_KEY }),
    verda: () =>
      sky.Verda({ baseUrl: verda.baseUrl, ...VERDA_TEST_CREDENTIALS }),
  });
  return {
    clouds,
    async [Symbol.asyncDispose]() {
      await Promise.all([
        ec2[Symbol.asyncDispose](),
        runpod[Symbol.asyncDispose](),
        vast[Symbol.asyncDispose](),
        verda[Symbol.asyncDispose](),
      ]);
    },
  };
}

const lower = (r: OfferRow) =>
  Math.min(r.spot ?? Infinity, r.onDemand ?? Infinity);

Deno.test("offers lists every cloud's machines for an accelerator, cheapest first", async () => {
  await using f = await fakes();
  const { code, out } = await run(
    ["offers", "--accelerator", "RTX_4090", "--json"],
    f.clouds(),
  );
  assert.equal(code, 0);
  const rows = JSON.parse(out) as OfferRow[];
  assert.deepEqual([...new Set(rows.map((r) => r.provider))].sort(), [
    "runpod",
    "vastai",
  ]);
  assert.ok(
    rows.every((r) => r.accelerator === "RTX 4090" && r.count >= 1),
    out,
  );
  assert.deepEqual(rows.map(lower), rows.map(lower).toSorted((a, b) => a - b));

  const table = await run(["offers", "--accelerator", "RTX_4090"], f.clouds());
  const [header, ...lines] = table.out.split("\n");
  assert.match(
    header,
    /^provider\s+region\s+accelerator\s+instance type\s+vCPU\s+memory\s+spot \$\/h\s+on-demand \$\/h$/,
  );
  assert.equal(lines.length, rows.length);
  assert.match(lines[0], /RTX 4090 × \d/);
  assert.match(lines[0], /\$\d+\.\d\d/);
});

Deno.test("offers --max-price and --provider narrow the list", async () => {
  await using f = await fakes();
  const all = JSON.parse(
    (await run(["offers", "--accelerator", "A100", "--json"], f.clouds())).out,
  ) as OfferRow[];
  const cap = lower(all[Math.floor(all.length / 2)]);
  const capped = JSON.parse(
    (await run([
      "offers",
      "--accelerator",
      "A100",
      "--max-price",
      String(cap),
      "--json",
    ], f.clouds())).out,
  ) as OfferRow[];
  assert.ok(
    capped.length > 0 && capped.length < all.length,
    `${capped.length} of ${all.length}`,
  );
  assert.ok(capped.every((r) => lower(r) <= cap));

  const only = JSON.parse(
    (await run([
      "offers",
      "--accelerator",
      "A100",
      "--provider",
      "vastai",
      "--json",
    ], f.clouds())).out,
  ) as OfferRow[];
  assert.ok(only.length > 0);
  assert.ok(only.every((r) => r.provider === "vastai"));

  const none = await run([
    "offers",
    "--accelerator",
    "A100",
    "--max-price",
    "0.01",
  ], f.clouds());
  assert.equal(none.code, 0);
  assert.equal(none.out, "No offers for A100 at most $0.01/h.");
});

Deno.test("offers without an accelerator lists machines without one; bad options are usage errors", async () => {
  await using f = await fakes();
  const cpu = await run(["offers", "--provider", "aws", "--json"], f.clouds());
  assert.equal(cpu.code, 0, cpu.err);
  const rows = JSON.parse(cpu.out) as OfferRow[];
  assert.ok(rows.length > 0);
  assert.ok(rows.every((r) => r.provider === "aws" && r.accelerator === null));

  const unknown = await run(["offers", "--provider", "gcp"], f.clouds());
  assert.equal(unknown.code, 2);
  assert.match(
    unknown.err,
    /Unknown provider\(s\) 'gcp': choose among aws, runpod, vastai, verda/,
  );
  const badPrice = await run(["offers", "--max-price", "cheap"], f.clouds());
  assert.equal(badPrice.code, 2);
  assert.match(badPrice.err, /--max-price must be a positive number/);
  const badAccelerator = await run(
    ["offers", "--accelerator", "H1000"],
    f.clouds(),
  );
  assert.equal(badAccelerator.code, 2);
  assert.match(badAccelerator.err, /Unknown accelerator 'H1000'/);
});

Deno.test("providers checks each cloud's credentials with a call, and says what to set", async () => {
  await using f = await fakes();
  const good = await run(["providers", "--json"], f.clouds());
  assert.equal(good.code, 0, good.out);
  const rows = JSON.parse(good.out) as ProviderRow[];
  assert.deepEqual(rows.map((r) => [r.provider, r.status]), [
    ["aws", "ok"],
    ["runpod", "ok"],
    ["vastai", "ok"],
    ["verda", "ok"],
  ]);

  const bad = await run(
    ["providers"],
    f.clouds({ runpod: "rpa_wrong", vast: "wrong" }),
  );
  assert.equal(bad.code, 1);
  assert.match(bad.out, /^provider\s+credentials\s+detail$/m);
  assert.match(bad.out, /^runpod\s+error\s+.*RunPod/m);
  assert.match(bad.out, /^vastai\s+error\s+.*/m);
  assert.match(bad.out, /^aws\s+ok\s+region us-east-1/m);
});

Deno.test("offers skips clouds without credentials, unless asked for by name", async () => {
  await using f = await fakes();
  const clouds = {
    ...f.clouds(),
    runpod: () => sky.RunPod({ baseUrl: "http://127.0.0.1:9" }),
  };
  const saved = Deno.env.get("RUNPOD_API_KEY");
  Deno.env.delete("RUNPOD_API_KEY");
  try {
    const skipped = await run(
      ["offers", "--accelerator", "RTX_4090", "--json"],
      clouds,
    );
    assert.equal(skipped.code, 0, skipped.err);
    assert.match(skipped.err, /\(runpod skipped: .*RUNPOD_API_KEY/);
    assert.ok(
      (JSON.parse(skipped.out) as OfferRow[]).every((r) =>
        r.provider === "vastai"
      ),
    );
    const asked = await run([
      "offers",
      "--accelerator",
      "RTX_4090",
      "--provider",
      "runpod",
    ], clouds);
    assert.equal(asked.code, 1);
    assert.match(asked.err, /runpod: ConfigError: .*RUNPOD_API_KEY/);
  } finally {
    if (saved !== undefined) Deno.env.set("RUNPOD_API_KEY", saved);
  }
});

Deno.test("cleanup --provider sweeps each cloud through its own API", async () => {
  await using f = await fakes();
  for (const cloud of ["runpod", "vastai", "verda"]) {
    const dry = await run(
      ["cleanup", "--provider", cloud, "--dry-run"],
      f.clouds(),
    );
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, new RegExp(`^Would remove at ${cloud}: 0 \\w+`));
  }
  const older = await run([
    "cleanup",
    "--provider",
    "runpod",
    "--older-than",
    "2h",
  ], f.clouds());
  assert.equal(older.code, 2);
  assert.match(older.err, /--older-than is not supported for runpod/);
  const none = await run(["cleanup"], f.clouds());
  assert.equal(none.code, 2);
  assert.match(none.err, /cleanup needs --provider aws\|runpod\|vastai\|verda/);
});

Deno.test("cleanup calls any provider's cleanup through the contract, with the options given, and prints its report", async () => {
  const asked: sky.ProviderCleanupOptions[] = [];
  const local = sky.Local();
  const clouds = {
    mine: () => ({
      ...local,
      name: "mine",
      cleanup(options: sky.ProviderCleanupOptions = {}) {
        asked.push(options);
        return Promise.resolve({
          region: "north",
          clusters: ["sky-1"],
          machines: ["m-1", "m-2"],
          securityGroups: [],
        });
      },
    }),
    bare: () => local,
  };
  const swept = await run([
    "cleanup",
    "--provider",
    "mine",
    "--cluster",
    "sky-1",
    "--older-than",
    "2h",
    "--region",
    "north",
  ], clouds);
  assert.equal(swept.code, 0, swept.err);
  assert.deepEqual(asked, [{
    cluster: "sky-1",
    olderThan: 7_200_000,
    region: "north",
    dryRun: false,
  }]);
  assert.deepEqual(swept.out.split("\n"), [
    "Removed at mine in north: 2 machines, 0 security groups of sky-1",
    "  machine m-1",
    "  machine m-2",
  ]);
  const bare = await run(["cleanup", "--provider", "bare"], clouds);
  assert.equal(bare.code, 2);
  assert.match(bare.err, /bare has no cleanup: it leaves nothing behind/);
});

Deno.test("cleanup refuses --endpoint and --profile for a cloud that takes neither", async () => {
  const refused = await run(
    ["cleanup", "--provider", "runpod", "--endpoint", "http://127.0.0.1:9"],
    CLOUDS,
  );
  assert.equal(refused.code, 2);
  assert.match(refused.err, /--endpoint is not supported for runpod/);
});

Deno.test("help exits 0 and prints the usage, for every command and flag", async () => {
  const cli = new URL("../cli.ts", import.meta.url).pathname;
  const exec = async (args: string[]) => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", cli, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { code, out: text.decode(stdout), err: text.decode(stderr) };
  };
  for (
    const args of [
      ["offers", "--help"],
      ["providers", "-h"],
      ["cleanup", "--help"],
      ["--help"],
      ["help"],
      [],
    ]
  ) {
    const { code, out } = await exec(args);
    assert.equal(code, 0, `skyward ${args.join(" ")} exits 0`);
    assert.match(out, /^Usage: skyward <command>/, args.join(" "));
  }
  const unknown = await exec(["ofers", "--help"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /Unknown command 'ofers'/);
});

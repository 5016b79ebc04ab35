/**
 * What a new user downloads: runs a `sky.Local()` hello and an AWS script
 * (which constructs `sky.AWS()` and checks its credentials against the EC2
 * fake, so the SDK must load) each with a fresh, empty `DENO_DIR`, and
 * prints the bytes the `DENO_DIR` holds afterwards (`du -sb`), the npm
 * packages fetched and whether Deno printed a warning.
 *
 * The library is copied to a temporary folder without its `deno.lock`, as a
 * user gets it: with a lockfile, Deno installs every npm package the
 * lockfile lists as soon as a program needs any (found by trying it, Deno
 * 2.9), so this repository's own lockfile, which holds the SDKs for the
 * tests, would hide what the code itself needs.
 *
 * Needs the npm registry. Run it with:
 *
 *     deno run -A bench/footprint.ts            # this checkout
 *     deno run -A bench/footprint.ts --ref main # a commit, for before/after
 *
 * @module
 */
import { parseArgs } from "node:util";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LIBRARY = [
  "mod.ts",
  "cli.ts",
  "deno.json",
  "src",
  "providers",
  "worker",
  "tests/fakes",
];

async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Copies the library (the working tree, or `ref`'s tree) into `dir`. */
async function copyLibrary(dir: string, ref?: string): Promise<void> {
  if (ref) {
    const archive = `${dir}.tar`;
    const out = await run("git", ["archive", "-o", archive, ref, ...LIBRARY], {
      cwd: repo,
    });
    if (out.code !== 0) throw new Error(`git archive ${ref}: ${out.stderr}`);
    await Deno.mkdir(dir, { recursive: true });
    const untar = await run("tar", ["-xf", archive, "-C", dir]);
    if (untar.code !== 0) throw new Error(`tar: ${untar.stderr}`);
    await Deno.remove(archive);
    return;
  }
  await Deno.mkdir(`${dir}/tests`, { recursive: true });
  for (const path of LIBRARY) {
    const out = await run("cp", ["-r", `${repo}/${path}`, `${dir}/${path}`]);
    if (out.code !== 0) throw new Error(`cp ${path}: ${out.stderr}`);
  }
}

const HELLO = `import * as sky from "./mod.ts";

export const hello = sky.compute(
  () => \`Hello from \${Deno.hostname()}!\`,
  { permissions: { sys: ["hostname"] } },
);

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    console: "silent",
  });
  console.log(await pool.run(hello()));
}
`;

const AWS = `import * as sky from "./mod.ts";
import { FakeEc2, TEST_CREDENTIALS } from "./tests/fakes/ec2.ts";

await using ec2 = await FakeEc2.start();
const provider = sky.AWS({
  region: ec2.region,
  endpoint: ec2.endpoint,
  credentials: TEST_CREDENTIALS,
});
console.log(await provider.checkCredentials!());
`;

interface Measure {
  script: string;
  ok: boolean;
  bytes: number;
  packages: string[];
  warning: boolean;
  output: string;
}

async function measure(
  lib: string,
  script: string,
  source: string,
): Promise<Measure> {
  await Deno.writeTextFile(`${lib}/${script}`, source);
  const denoDir = `${lib}.deno-${script.replace(/\W/g, "_")}`;
  await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(denoDir);
  const out = await run(Deno.execPath(), ["run", "-A", script], {
    cwd: lib,
    env: {
      DENO_DIR: denoDir,
      XDG_CACHE_HOME: `${lib}.cache`,
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
    },
  });
  const du = await run("du", ["-sb", denoDir]);
  const bytes = Number(du.stdout.split(/\s/)[0]);
  const npm = `${denoDir}/npm/registry.npmjs.org`;
  const packages: string[] = [];
  try {
    for await (const entry of Deno.readDir(npm)) {
      if (!entry.name.startsWith("@")) {
        packages.push(entry.name);
        continue;
      }
      for await (const sub of Deno.readDir(`${npm}/${entry.name}`)) {
        packages.push(`${entry.name}/${sub.name}`);
      }
    }
  } catch {
    // No npm package at all.
  }
  return {
    script,
    ok: out.code === 0,
    bytes,
    packages: packages.sort(),
    warning: /warning/i.test(out.stderr),
    output: (out.stdout + out.stderr).trim().split("\n").slice(-3).join(
      "\n",
    ),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { ref: { type: "string" } },
  });
  const temp = await Deno.makeTempDir({ prefix: "skyward-footprint-" });
  try {
    const lib = `${temp}/lib`;
    await copyLibrary(lib, values.ref);
    const label = values.ref ?? "working tree";
    for (const [script, source] of [["hello.ts", HELLO], ["aws.ts", AWS]]) {
      const m = await measure(lib, script, source);
      const mb = (m.bytes / 1e6).toFixed(1);
      const aws = m.packages.filter((p) => p.startsWith("@aws-sdk/")).length;
      const sdk = [
        ...(aws ? [`${aws} @aws-sdk/*`] : []),
        ...m.packages.filter((p) => p === "ssh2" || p === "cpu-features"),
      ];
      console.log(
        `${label} ${m.script}: ${
          m.ok ? "ran" : "FAILED"
        }, DENO_DIR ${mb} MB, ` +
          `${m.packages.length} npm packages${
            sdk.length ? ` (${sdk.join(", ")})` : ""
          }, ${m.warning ? "a warning printed" : "no warning"}`,
      );
      if (!m.ok) console.log(m.output);
    }
  } finally {
    await Deno.remove(temp, { recursive: true });
  }
}

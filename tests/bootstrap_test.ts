/**
 * The bootstrap script (src/bootstrap/script.ts, run by src/bootstrap/bootstrap.ts): generated for an image, run on a
 * host, idempotent. The rig tests run it over SSH on the hosts of
 * tests/rig/rig.ts, which have no internet: Deno and the npm packages are
 * shipped from this client. Without root or `sshd` they are ignored with the
 * reason printed; under `CI=true` that is a failure instead.
 *
 * Nothing here reaches the internet: the Deno download site and the npm
 * registry the hosts probe are `127.0.0.1:9`, which refuses at once.
 */
import assert from "node:assert/strict";
import {
  bootstrap,
  BootstrapError,
  type BootstrapPhaseReport,
  type BootstrapResult,
  quickStart,
} from "../src/bootstrap/bootstrap.ts";
import type { BootstrapPlan } from "../src/bootstrap/plan.ts";
import { bootstrapScript } from "../src/bootstrap/script.ts";
import { libraryBundle } from "../src/bootstrap/worker.ts";
import { buildBundle } from "../src/bootstrap/bundle.ts";
import { nodeCode } from "../src/bootstrap/stage.ts";
import { decode, encode } from "../src/wire/codec.ts";
import { Image, type ImageOptions } from "../src/image.ts";
import { sandboxSpecOf } from "../src/sandbox.ts";
import { encodeFrame, FrameDecoder } from "../src/wire/frames.ts";
import { PROTOCOL_VERSION, workerMessage } from "../src/wire/messages.ts";
import { shellQuote } from "../src/_shell.ts";
import { SshConnection } from "../src/transport/ssh/connection.ts";
import { SshHost } from "../src/transport/ssh/host.ts";
import type { Channel, Host } from "../src/transport/host.ts";
import { LocalHost } from "../src/transport/local.ts";
import { NodeSession } from "../src/pool/node.ts";
import { requireRig, type RigHost } from "./rig/rig.ts";
import { rigTester } from "./clouds.ts";
import { readEnv, readText } from "./fixtures/bootstrap/task.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`bootstrap_test.ts: SSH rig tests ignored: ${reason}`);

/** Unreachable at once: nothing in these tests may reach the internet. */
const OFFLINE = {
  denoDownloadUrl: "http://127.0.0.1:9",
  npmRegistry: "http://127.0.0.1:9/",
};
const FIXTURE = new URL("./fixtures/bootstrap/task.ts", import.meta.url);
const TASK_MODULE = "tests/fixtures/bootstrap/task.ts";
/** The cache these tests use on the rig hosts, relative to the login directory; removed at the end. */
const RIG_CACHE = ".cache/skyward-bootstrap-test";

async function plan(
  image: ImageOptions,
  cacheDir: string,
): Promise<BootstrapPlan> {
  return {
    image: Image(image),
    denoVersion: Deno.version.deno,
    cacheDir,
    code: await buildBundle([FIXTURE.href]),
    lib: await libraryBundle(),
  };
}

const IMAGE: ImageOptions = {
  deno: "client",
  env: { MODE: "prod", QUOTED: `it's "quoted" $HOME\nand a second line` },
  includes: ["tests/fixtures/bootstrap/data"],
  excludes: ["*.tmp"],
};

/** Runs a bootstrap, recording each report with the time it arrived. */
async function run(host: Host, p: BootstrapPlan) {
  const reports: (BootstrapPhaseReport & { at: number })[] = [];
  const started = performance.now();
  const result = await bootstrap(
    host,
    p,
    (e) => reports.push({ ...e, at: performance.now() }),
    OFFLINE,
  );
  return {
    result,
    reports,
    ms: performance.now() - started,
    done: performance.now(),
  };
}

/** The bootstrap stopped at the apt phase, and reported it failed with the error's output. */
function assertAptFailed(
  reports: BootstrapPhaseReport[],
  error: BootstrapError,
): void {
  assert.deepEqual(statuses(reports), [
    "env:started",
    "env:completed",
    "apt:started",
    "apt:failed",
  ]);
  assert.equal(reports.at(-1)?.output, error.output);
}

function statuses(reports: BootstrapPhaseReport[]): string[] {
  return reports.map((r) => `${r.phase}:${r.status}`);
}

/** A host that adds environment variables to every command and counts them. */
class CountingHost implements Host {
  execs = 0;
  constructor(
    readonly inner: Host,
    readonly extraEnv: Record<string, string> = {},
  ) {}
  get label(): string {
    return this.inner.label;
  }
  exec(
    argv: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ): Promise<Channel> {
    this.execs++;
    return Promise.resolve(
      this.inner.exec(argv, {
        ...options,
        env: { ...this.extraEnv, ...options.env },
      }),
    );
  }
  writeTree(dir: string, files: { path: string; data: Uint8Array }[]) {
    return this.inner.writeTree(dir, files);
  }
  exists(path: string) {
    return this.inner.exists(path);
  }
  close() {
    return this.inner.close();
  }
}

const keys = new Map<string, string>();
async function connect(host: RigHost): Promise<SshHost> {
  if (!keys.has(host.keyPath)) {
    keys.set(host.keyPath, await Deno.readTextFile(host.keyPath));
  }
  return new SshHost(
    await SshConnection.connect({
      host: host.address,
      port: host.port,
      user: host.user,
      privateKey: keys.get(host.keyPath)!,
      hostKey: host.hostKey,
      keepaliveInterval: 0,
    }),
  );
}

async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("Expected a rejection, but it resolved");
}

async function sh(host: SshHost, command: string): Promise<string> {
  const result = await host.connection.run(command);
  assert.equal(result.code, 0, `'${command}' failed: ${result.stderr}`);
  return result.stdout;
}

/**
 * `APT_CONFIG` for apt-get with no sources and its own lists and cache: it
 * cannot find any package, reaches no network and leaves the system's apt
 * state alone.
 */
async function offlineApt(dir: string): Promise<Record<string, string>> {
  for (
    const d of [
      "apt/sources.d",
      "apt/lists/partial",
      "apt/cache/archives/partial",
    ]
  ) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  await Deno.writeTextFile(
    `${dir}/apt/apt.conf`,
    [
      `Dir::Etc::SourceList "/dev/null";`,
      `Dir::Etc::SourceParts "${dir}/apt/sources.d";`,
      `Dir::State::Lists "${dir}/apt/lists";`,
      `Dir::Cache "${dir}/apt/cache";`,
      "",
    ].join("\n"),
  );
  return { APT_CONFIG: `${dir}/apt/apt.conf` };
}

const hasRootApt = Deno.uid() === 0 &&
  new Deno.Command("sh", {
      args: ["-c", "command -v apt-get && test -e /var/lib/dpkg/lock-frontend"],
      stdout: "null",
    }).outputSync().code === 0;

// ---------------------------------------------------------------------------
// The script, here

Deno.test("bootstrapScript() generates a script that dash and bash parse, quoting every value", async () => {
  const script = bootstrapScript({
    cacheDir: "/tmp/a dir/with 'quotes'",
    denoVersion: "2.9.6",
    deno: "client",
    denoDownloadUrl: "https://dl.deno.land",
    apt: ["curl", "libfoo=1.2-3", "bar:amd64"],
    env: {
      A: "it's",
      B: "$(touch /tmp/pwned)",
      C: "line\nSKYWARD_ENV_0\nnext",
    },
    envHash: "e0",
    codeHash: "c0",
    codeKey: "c1",
    libHash: "l0",
    depsKey: "d0",
    config: { in: "code", path: "deno.json" },
    workerEntry: "worker/main.ts",
    codeModules: ["main.ts", "a dir/it's.ts"],
    npmRegistry: false,
    probeTimeoutMs: 500,
    aptLockTimeoutMs: 1_000,
  });
  for (const shell of ["dash", "bash"]) {
    const { code, stderr } = await new Deno.Command(shell, {
      args: ["-n", "-c", script],
      stderr: "piped",
    }).output();
    assert.equal(code, 0, `${shell}: ${new TextDecoder().decode(stderr)}`);
  }
  assert.match(script, /^CACHE='\/tmp\/a dir\/with '\\''quotes'\\'''$/m);
  assert.match(script, /^export B='\$\(touch \/tmp\/pwned\)'$/m);
  assert.match(script, /^PROBE_S=1$/m);
});

Deno.test("bootstrapScript() rejects values that cannot be put in a script safely", () => {
  const base = {
    cacheDir: "$HOME/.cache/skyward",
    denoVersion: "2.9.6",
    deno: "upload" as const,
    denoDownloadUrl: "https://dl.deno.land",
    apt: [],
    env: {},
    envHash: "e0",
    codeHash: "c0",
    codeKey: "c0",
    libHash: "l0",
    depsKey: "d0",
    workerEntry: "worker/main.ts",
    codeModules: [],
    npmRegistry: false as const,
    probeTimeoutMs: 1,
    aptLockTimeoutMs: 1,
  };
  assert.throws(
    () => bootstrapScript({ ...base, env: { "A B": "x" } }),
    /shell identifiers, got 'A B'/,
  );
  assert.throws(
    () => bootstrapScript({ ...base, apt: ["curl; rm -rf /"] }),
    /not a Debian package name/,
  );
  assert.throws(
    () => bootstrapScript({ ...base, codeHash: "../x" }),
    /'codeHash' must be alphanumeric/,
  );
});

Deno.test("bootstrap() refuses a plan without an exact Deno version before touching the host", async () => {
  const host = new CountingHost(new LocalHost("/nonexistent"));
  const p = await plan({}, "/nonexistent");
  await assert.rejects(
    () => bootstrap(host, { ...p, denoVersion: "latest" }, () => {}),
    /'denoVersion' must be an exact version such as "2.9.6", got "latest"/,
  );
  await assert.rejects(
    () => bootstrap(host, p, () => {}, { probeTimeout: -1 }),
    /'probeTimeout' must be a positive number of milliseconds, got -1/,
  );
  assert.equal(host.execs, 0);
});

Deno.test({
  name:
    "a local host gets Deno uploaded when the download site is unreachable, includes less excludes, and a re-run skips every phase",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "skyward-bootstrap-" });
    try {
      const host = new CountingHost(new LocalHost(dir));
      const p = await plan(IMAGE, `${dir}/cache`);
      const first = await run(host, p);
      assert.deepEqual(statuses(first.reports), [
        "env:started",
        "env:completed",
        "apt:started",
        "apt:skipped",
        "deno:started",
        "deno:completed",
        "code:started",
        "code:completed",
        "deps:started",
        "deps:completed",
      ]);
      const log = await Deno.readTextFile(`${dir}/cache/logs/deno.log`);
      assert.match(
        log,
        /Cannot reach http:\/\/127\.0\.0\.1:9\/release\/v.*\.zip/,
      );
      assert.match(log, /Uploading the client's Deno instead/);
      const r = first.result;
      assert.equal(r.denoPath, `${dir}/cache/deno/${Deno.version.deno}/deno`);
      assert.equal(
        (await Deno.stat(r.denoPath)).size,
        (await Deno.stat(Deno.execPath())).size,
      );
      const data = `${r.codeDir}/tests/fixtures/bootstrap/data`;
      assert.equal(
        await Deno.readTextFile(`${data}/nested/deep.txt`),
        "nested\n",
      );
      await assert.rejects(() => Deno.stat(`${data}/nested/scratch.tmp`));
      // The includes change the directory, not the hash the worker checks:
      // that of the code as shipped.
      const shipped = await nodeCode(p.code, p.lib, p.image.imports);
      assert.equal(r.codeHash, shipped.hash);
      assert.notEqual(r.codeDir.split("/").pop(), shipped.hash);
      assert.equal(
        await Deno.readTextFile(`${r.codeDir}/.skyward-hash`),
        shipped.hash,
      );
      // The environment file a login shell can source.
      const [envFile] = [...Deno.readDirSync(`${dir}/cache/env`)];
      const sourced = await new Deno.Command("sh", {
        args: [
          "-c",
          `. '${dir}/cache/env/${envFile.name}' && printf %s "$QUOTED"`,
        ],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(sourced.stdout), IMAGE.env!.QUOTED);

      const second = await run(host, p);
      assert.deepEqual(
        second.reports.filter((e) => e.status !== "started").map((e) =>
          `${e.phase}:${e.status}`
        ),
        ["env", "apt", "deno", "code", "deps"].map((p) => `${p}:skipped`),
      );
      assert.equal(
        host.execs,
        1 + 3 + 1,
        "first: script and 3 uploads; second: the script only",
      );
      assert.deepEqual(second.result, first.result);

      // A changed include (here, its time) is a new code directory.
      const greeting = new URL(
        "./fixtures/bootstrap/data/greeting.txt",
        import.meta.url,
      );
      const { atime, mtime } = await Deno.stat(greeting);
      try {
        await Deno.utime(greeting, new Date(), new Date(Date.now() + 5_000));
        // A new plan object (the same bundles), so the includes are looked at again.
        const third = await run(host, { ...p });
        assert.deepEqual(
          third.reports.filter((e) => e.status === "completed").map((e) =>
            e.phase
          ),
          ["code"],
        );
        assert.notEqual(third.result.codeDir, first.result.codeDir);
        assert.equal(third.result.codeHash, first.result.codeHash);
      } finally {
        await Deno.utime(greeting, atime!, mtime!);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a missing apt package fails phase 'apt' with apt-get's own error (root, no network: an empty source list)",
  ignore: !hasRootApt,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "skyward-bootstrap-apt-" });
    try {
      const reports: BootstrapPhaseReport[] = [];
      const host = new CountingHost(new LocalHost(dir), await offlineApt(dir));
      const aptPlan = await plan(
        { apt: ["skyward-no-such-package"] },
        `${dir}/cache`,
      );
      const error = await rejection(() =>
        bootstrap(
          host,
          aptPlan,
          (e) => reports.push(e),
          OFFLINE,
        )
      );
      assert.ok(error instanceof BootstrapError, String(error));
      assert.equal(error.phase, "apt");
      assert.match(
        error.message,
        /^Bootstrap phase 'apt' failed on local:.*: /,
      );
      assert.match(
        error.output,
        /Unable to locate package skyward-no-such-package/,
      );
      assert.match(
        error.output,
        /apt-get install skyward-no-such-package failed/,
      );
      assertAptFailed(reports, error);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "the apt phase waits for the dpkg lock, and gives up after aptLockTimeout saying so",
  ignore: !hasRootApt ||
    new Deno.Command("sh", { args: ["-c", "command -v fuser"], stdout: "null" })
        .outputSync().code !== 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "skyward-bootstrap-lock-" });
    // Another process has the lock file open, as apt-get would.
    const holder = new Deno.Command("sh", {
      args: ["-c", "exec 3</var/lib/dpkg/lock-frontend; exec sleep 30"],
    }).spawn();
    try {
      const error = await rejection(async () =>
        bootstrap(
          new CountingHost(new LocalHost(dir), await offlineApt(dir)),
          await plan({ apt: ["skyward-no-such-package"] }, `${dir}/cache`),
          () => {},
          { ...OFFLINE, aptLockTimeout: 2_000 },
        )
      );
      assert.ok(error instanceof BootstrapError, String(error));
      assert.equal(error.phase, "apt");
      assert.match(error.output, /^Waiting for the dpkg lock$/m);
      assert.match(
        error.output,
        /The dpkg lock is still held after 2 s \(another apt-get, or unattended-upgrades\)/,
      );
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A test given a fresh temporary directory, removed when it ends. */
function tempDirTest(name: string, fn: (dir: string) => Promise<void>): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "skyward-bootstrap-" });
    try {
      await fn(dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

tempDirTest(
  "a script that dies mid-phase is a BootstrapError naming that phase",
  async (dir) => {
    const channels: Channel[] = [];
    const host = new (class extends CountingHost {
      override async exec(
        argv: string[],
        options?: { cwd?: string; env?: Record<string, string> },
      ): Promise<Channel> {
        const channel = await super.exec(argv, options);
        channels.push(channel);
        return channel;
      }
    })(new LocalHost(dir));
    const reports: BootstrapPhaseReport[] = [];
    const error = await rejection(async () =>
      bootstrap(host, await plan({}, `${dir}/cache`), (e) => {
        reports.push(e);
        if (e.phase === "deno" && e.status === "started") channels[0].kill();
      }, OFFLINE)
    );
    assert.ok(error instanceof BootstrapError, String(error));
    assert.equal(error.phase, "deno");
    assert.match(error.message, /^Bootstrap phase 'deno' failed on local:/);
    assert.match(error.output, /the script ended with signal SIGKILL/);
    assert.deepEqual(statuses(reports).slice(-2), [
      "deno:started",
      "deno:failed",
    ]);
  },
);

tempDirTest(
  "a host without tar gets its files through Host.writeTree",
  async (dir) => {
    // A PATH with every command of this machine but tar.
    await Deno.mkdir(`${dir}/bin`);
    const seen = new Set(["tar"]);
    for (
      const bin of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    ) {
      for await (const entry of Deno.readDir(bin)) {
        if (seen.has(entry.name)) continue;
        seen.add(entry.name);
        await Deno.symlink(`${bin}/${entry.name}`, `${dir}/bin/${entry.name}`);
      }
    }
    const host = new CountingHost(new LocalHost(dir), { PATH: `${dir}/bin` });
    const first = await run(host, await plan(IMAGE, `${dir}/cache`));
    assert.deepEqual(
      first.reports.filter((e) => e.status !== "started").map((e) => e.status),
      ["completed", "skipped", "completed", "completed", "completed"],
    );
    assert.equal(host.execs, 1, "the uploads went by writeTree, not by tar");
    assert.equal(
      await Deno.readTextFile(
        `${first.result.codeDir}/tests/fixtures/bootstrap/data/greeting.txt`,
      ),
      "hello from an include\n",
    );
  },
);

tempDirTest(
  "two bootstraps of one host at once take turns: one does the work, the other finds it done",
  async (dir) => {
    const p = await plan(IMAGE, `${dir}/cache`);
    const [a, b] = await Promise.all([
      run(new LocalHost(dir), p),
      run(new LocalHost(dir), p),
    ]);
    const done = (r: typeof a) =>
      r.reports.filter((e) => e.status !== "started").map((e) => e.status);
    const [worked, waited] = done(a).includes("completed") ? [a, b] : [b, a];
    assert.deepEqual(done(worked), [
      "completed",
      "skipped",
      "completed",
      "completed",
      "completed",
    ]);
    assert.deepEqual(done(waited), Array(5).fill("skipped"));
    assert.deepEqual(a.result, b.result);
  },
);

tempDirTest(
  "a ready host is found ready while another bootstrap holds its cache lock",
  async (dir) => {
    const p = await plan(IMAGE, `${dir}/cache`);
    await run(new LocalHost(dir), p);
    // Another pool's bootstrap of this host is at work, for 30 s.
    const holder = new Deno.Command("flock", {
      args: [`${dir}/cache/.lock`, "sleep", "30"],
    }).spawn();
    let released = false;
    const holding = holder.status.then(() => released = true);
    try {
      // The lock is taken before the second bootstrap looks.
      while (
        new Deno.Command("flock", {
          args: ["-n", `${dir}/cache/.lock`, "true"],
        }).outputSync().code === 0
      ) await new Promise((resolve) => setTimeout(resolve, 20));
      const reports: BootstrapPhaseReport[] = [];
      const again = await bootstrap(
        new LocalHost(dir),
        p,
        (e) => reports.push(e),
        OFFLINE,
      );
      assert.equal(released, false, "the bootstrap waited for the lock");
      assert.deepEqual(
        reports.filter((e) => e.status !== "started").map((e) => e.status),
        Array(5).fill("skipped"),
      );
      assert.equal(
        again.denoPath,
        `${dir}/cache/deno/${Deno.version.deno}/deno`,
      );
    } finally {
      if (!released) holder.kill("SIGKILL");
      await holding;
    }
  },
);

tempDirTest(
  "a host missing its Deno binary or its code gets them again, markers or not",
  async (dir) => {
    const p = await plan(IMAGE, `${dir}/cache`);
    const first = await run(new LocalHost(dir), p);
    await Deno.remove(first.result.denoPath);
    await Deno.remove(first.result.codeDir, { recursive: true });
    const again = await run(new LocalHost(dir), p);
    assert.deepEqual(
      again.reports.filter((e) => e.status !== "started").map((e) =>
        `${e.phase}:${e.status}`
      ),
      [
        "env:skipped",
        "apt:skipped",
        "deno:completed",
        "code:completed",
        "deps:skipped",
      ],
    );
    assert.equal(
      (await Deno.stat(again.result.denoPath)).size,
      (await Deno.stat(Deno.execPath())).size,
    );
    assert.equal(
      await Deno.readTextFile(`${again.result.codeDir}/.skyward-hash`),
      again.result.codeHash,
    );
  },
);

tempDirTest(
  "an aborted bootstrap rejects with the signal's reason, and the next one completes and leaves no staging files",
  async (dir) => {
    const p = await plan({ deno: "upload" }, `${dir}/cache`);
    const controller = new AbortController();
    const reason = new Error("stop");
    const error = await rejection(() =>
      bootstrap(new LocalHost(dir), p, (e) => {
        if (e.phase === "deno" && e.status === "started") {
          controller.abort(reason);
        }
      }, { ...OFFLINE, signal: controller.signal })
    );
    assert.equal(error, reason);
    const next = await run(new LocalHost(dir), p);
    assert.deepEqual(
      next.reports.filter((e) => e.status !== "started").map((e) => e.status),
      ["skipped", "skipped", "completed", "completed", "completed"],
    );
    assert.deepEqual([...Deno.readDirSync(`${dir}/cache/tmp`)], []);
  },
);

tempDirTest(
  "a host on another platform that cannot download Deno fails phase 'deno', saying why",
  async (dir) => {
    // The host says it is a Mac on ARM.
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/uname`,
      '#!/bin/sh\ncase "$1" in -m) echo arm64 ;; *) echo Darwin ;; esac\n',
      { mode: 0o755 },
    );
    const host = new CountingHost(new LocalHost(dir), {
      PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
    });
    const error = await rejection(async () =>
      bootstrap(
        host,
        await plan({ deno: "client" }, `${dir}/cache`),
        () => {},
        OFFLINE,
      )
    );
    assert.ok(error instanceof BootstrapError, String(error));
    assert.equal(error.phase, "deno");
    assert.match(
      error.output,
      /Cannot reach http:\/\/127\.0\.0\.1:9\/release\/v[^ ]+\/deno-aarch64-apple-darwin\.zip/,
    );
    assert.match(
      error.output,
      /the host is Darwin\/arm64 and cannot download Deno; this client's Deno \(x86_64-unknown-linux-gnu\) does not run there/,
    );
  },
);

// ---------------------------------------------------------------------------
// On the rig: real hosts over SSH, without internet

const rigTest = rigTester(rig);

/** The first host's bootstrap, shared by the tests that follow it. */
let ready: BootstrapResult | undefined;
let rigPlan: BootstrapPlan | undefined;

rigTest(
  "a first bootstrap on a fresh host runs each phase and reports it as it happens",
  async (hosts) => {
    const host = await connect(hosts[0]);
    try {
      await sh(host, `rm -rf ${RIG_CACHE}`);
      rigPlan = await plan({ ...IMAGE, apt: ["coreutils"] }, RIG_CACHE);
      const counting = new CountingHost(host);
      const first = await run(counting, rigPlan);
      console.log(
        `first bootstrap on ${host.label}: ${first.ms.toFixed(0)} ms`,
      );
      assert.deepEqual(statuses(first.reports), [
        "env:started",
        "env:completed",
        "apt:started",
        "apt:skipped", // coreutils is installed
        "deno:started",
        "deno:completed",
        "code:started",
        "code:completed",
        "deps:started",
        "deps:completed",
      ]);
      // Streamed: 'code' was reported done well before the bootstrap was
      // (the 'deps' phase ships ~20 MB and checks the graph after it).
      const code = first.reports.find((e) =>
        e.phase === "code" && e.status === "completed"
      )!;
      assert.ok(
        first.done - code.at > 100,
        `code completed ${first.done - code.at} ms before the end`,
      );
      for (const e of first.reports) {
        assert.ok(
          e.elapsedMs >= 0 && e.elapsedMs < first.ms + 1000,
          JSON.stringify(e),
        );
      }
      ready = first.result;
      const home = (await sh(host, 'printf %s "$HOME"')).trim();
      assert.equal(ready.denoDir, `${home}/${RIG_CACHE}/deno_dir`);
      assert.match(
        await sh(host, `cat ${RIG_CACHE}/logs/deno.log`),
        /Cannot reach http:\/\/127\.0\.0\.1:9\/release\/v[^ ]+\/deno-x86_64-unknown-linux-gnu\.zip/,
      );
      assert.match(
        await sh(host, `cat ${RIG_CACHE}/logs/deps.log`),
        /Cannot reach http:\/\/127\.0\.0\.1:9\/: shipping npm packages from the client/,
      );
      // The npm packages sit in DENO_DIR as in the client's cache.
      assert.equal(
        (await sh(
          host,
          `ls ${ready.denoDir}/npm/registry.npmjs.org/@msgpack/msgpack`,
        )).split("\n").filter(Boolean).sort().join(","),
        "3.1.3,registry.json",
      );
      // Only the packages the shipped graphs reach: not fast-check, which
      // only the tests import, though the lockfile lists it, nor the SSH
      // library and cloud SDKs, which the library loads on first use on
      // the client only; the shipped lockfile is pruned to match.
      const npm = await sh(host, `ls ${ready.denoDir}/npm/registry.npmjs.org`);
      assert.match(npm, /^zod$/m);
      assert.doesNotMatch(npm, /^fast-check$/m);
      assert.doesNotMatch(npm, /^ssh2$/m);
      assert.doesNotMatch(npm, /^@aws-sdk$/m);
      const lock = JSON.parse(await sh(host, `cat ${ready.codeDir}/deno.lock`));
      assert.ok(lock.npm["zod@4.6.7"]);
      assert.equal(lock.npm["fast-check@4.11.0"], undefined);
    } finally {
      await host.close();
    }
  },
);

rigTest(
  "a second bootstrap on the ready host reports every phase skipped, in one command",
  async (hosts) => {
    assert.ok(ready && rigPlan, "the first bootstrap ran");
    const host = await connect(hosts[0]);
    try {
      const counting = new CountingHost(host);
      const again = await run(counting, rigPlan);
      console.log(`re-run on ${host.label}: ${again.ms.toFixed(0)} ms`);
      assert.deepEqual(
        again.reports.filter((e) => e.status !== "started").map((e) =>
          `${e.phase}:${e.status}`
        ),
        ["env", "apt", "deno", "code", "deps"].map((p) => `${p}:skipped`),
      );
      assert.equal(counting.execs, 1);
      assert.deepEqual(again.result, ready);
      assert.ok(again.ms < 500, `the re-run took ${again.ms} ms`);
    } finally {
      await host.close();
    }
  },
);

/** Sends frames to a worker's stdin and reads its replies, one at a time. */
class WorkerClient {
  #decoder = new FrameDecoder(workerMessage);
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #queue: { header: { t: string }; payload: Uint8Array }[] = [];
  constructor(readonly channel: Channel) {
    this.#reader = channel.readable.getReader();
    this.#writer = channel.writable.getWriter();
  }
  send(header: Record<string, unknown>, payload?: Uint8Array): Promise<void> {
    return this.#writer.write(encodeFrame(header as never, payload));
  }
  async next(): Promise<
    { header: Record<string, unknown>; payload: Uint8Array }
  > {
    while (this.#queue.length === 0) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("the worker closed its output");
      for (const frame of this.#decoder.push(value)) {
        if (frame instanceof Error) throw frame;
        this.#queue.push(frame as never);
      }
    }
    return this.#queue.shift() as never;
  }
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }
}

rigTest(
  "the bootstrapped worker starts offline, answers hello and runs tasks that see the image's env and includes",
  async (hosts) => {
    assert.ok(ready && rigPlan, "the first bootstrap ran");
    const host = await connect(hosts[0]);
    try {
      const channel = await host.exec([
        ready.denoPath,
        "run",
        "--cached-only",
        "--quiet",
        "--no-prompt",
        "-A",
        "--unstable-worker-options",
        ...(ready.configPath ? ["--config", ready.configPath] : []),
        ready.workerEntry,
      ], { cwd: ready.codeDir, env: ready.env });
      const stderr = new Response(channel.stderr).text().catch((e) =>
        `(stderr lost: ${e})`
      );
      const worker = new WorkerClient(channel);
      try {
        await worker.send({
          t: "hello",
          v: PROTOCOL_VERSION,
          code: ready.codeHash,
          deno: Deno.version.deno,
          modules: [TASK_MODULE],
          concurrency: 1,
        });
        const hello = await worker.next();
        assert.equal(hello.header.t, "hello");
        assert.equal(
          hello.header.failed,
          undefined,
          `hello failed: ${
            JSON.stringify(hello.payload.length ? decode(hello.payload) : null)
          }`,
        );
        assert.equal(hello.header.hostname, hosts[0].name);
        assert.equal(hello.header.codeUrl, `file://${ready.codeDir}/`);

        // Each compute's sandbox, as a pool would define it (env, read).
        const specs: Record<string, ReturnType<typeof sandboxSpecOf>> = {
          readEnv: sandboxSpecOf(readEnv),
          readText: sandboxSpecOf(readText),
        };
        const call = async (id: number, key: string, args: unknown[]) => {
          await worker.send({
            t: "define",
            m: TASK_MODULE,
            k: key,
            spec: specs[key],
          });
          await worker.send(
            { t: "call", id, m: TASK_MODULE, k: key },
            encode(args, "args"),
          );
          for (;;) {
            const reply = await worker.next();
            if (reply.header.t === "log") continue;
            assert.equal(reply.header.t, "ok", JSON.stringify(reply.header));
            return decode(reply.payload);
          }
        };
        assert.equal(await call(1, "readEnv", ["MODE"]), "prod");
        assert.equal(await call(2, "readEnv", ["QUOTED"]), IMAGE.env!.QUOTED);
        assert.equal(await call(3, "readEnv", ["DENO_DIR"]), ready.denoDir);
        assert.equal(
          await call(4, "readText", [
            "tests/fixtures/bootstrap/data/greeting.txt",
          ]),
          "hello from an include\n",
        );
        assert.equal(
          await call(5, "readText", [
            "tests/fixtures/bootstrap/data/nested/scratch.tmp",
          ]),
          null,
        );
        await worker.send({ t: "bye" });
        const exit = await channel.exited;
        assert.equal(exit.code, 0, await stderr);
      } catch (error) {
        channel.kill();
        throw new Error(`${error}\nThe worker's stderr: ${await stderr}`, {
          cause: error,
        });
      } finally {
        channel.kill();
        await worker.close();
      }
      // No worker is left on the host.
      // (The pattern's "[.]" keeps pgrep from matching the shell that runs it.)
      const left = await host.connection.run(
        `pgrep -u "$(id -u)" -f ${
          shellQuote([ready.workerEntry.replace(/\.ts$/, "[.]ts")])
        }`,
      );
      assert.equal(left.stdout.trim(), "", `processes left: ${left.stdout}`);
    } finally {
      await host.close();
    }
  },
);

rigTest(
  "a failing apt package fails phase 'apt', naming the host, with the tail of its output",
  async (hosts) => {
    const host = await connect(hosts[1]);
    try {
      await sh(host, `rm -rf ${RIG_CACHE}`);
      const reports: BootstrapPhaseReport[] = [];
      const error = await rejection(async () =>
        bootstrap(
          host,
          await plan({ apt: ["curl", "skyward-no-such-package"] }, RIG_CACHE),
          (e) => reports.push(e),
          OFFLINE,
        )
      );
      assert.ok(error instanceof BootstrapError, String(error));
      assert.equal(error.name, "BootstrapError");
      assert.equal(error.phase, "apt");
      assert.equal(error.host, host.label);
      assert.ok(
        error.message.startsWith(
          `Bootstrap phase 'apt' failed on ${host.label}: `,
        ),
        error.message,
      );
      // curl is installed; the other is missing, and this user may not install it.
      assert.match(error.output, /Installing: skyward-no-such-package$/m);
      assert.match(
        error.output,
        new RegExp(
          `user ${hosts[1].user} is not root and has no passwordless sudo`,
        ),
      );
      assertAptFailed(reports, error);
    } finally {
      await host.close();
    }
  },
);

/** A zip archive holding one file, stored (no compression), as Deno's releases hold `deno`. */
function storedZip(name: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const table = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  }
  crc = (crc ^ 0xffffffff) >>> 0;
  const fileName = new TextEncoder().encode(name);
  const local = new DataView(new ArrayBuffer(30));
  local.setUint32(0, 0x04034b50, true);
  local.setUint16(4, 10, true);
  local.setUint32(14, crc, true);
  local.setUint32(18, data.length, true);
  local.setUint32(22, data.length, true);
  local.setUint16(26, fileName.length, true);
  const central = new DataView(new ArrayBuffer(46));
  central.setUint32(0, 0x02014b50, true);
  central.setUint16(4, (3 << 8) | 10, true); // made by Unix
  central.setUint16(6, 10, true);
  central.setUint32(16, crc, true);
  central.setUint32(20, data.length, true);
  central.setUint32(24, data.length, true);
  central.setUint16(28, fileName.length, true);
  central.setUint32(38, (0o100755 << 16) >>> 0, true);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, 1, true);
  end.setUint16(10, 1, true);
  end.setUint32(12, 46 + fileName.length, true);
  end.setUint32(16, 30 + fileName.length + data.length, true);
  const parts = [
    new Uint8Array(local.buffer),
    fileName,
    data,
    new Uint8Array(central.buffer),
    fileName,
    new Uint8Array(end.buffer),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

rigTest(
  "'deno: client' downloads the release zip when the host reaches the download site (a mirror on the rig's bridge)",
  async (hosts) => {
    const zipPath =
      `/release/v${Deno.version.deno}/deno-x86_64-unknown-linux-gnu.zip`;
    const zip = storedZip("deno", await Deno.readFile(Deno.execPath()));
    const requests: string[] = [];
    const server = Deno.serve({
      hostname: hosts[2].address.replace(/\.\d+$/, ".1"),
      port: 0,
      onListen() {},
    }, (request) => {
      const path = new URL(request.url).pathname;
      const range = request.headers.get("range");
      requests.push(`${request.method} ${path}${range ? ` ${range}` : ""}`);
      if (path !== zipPath) return new Response("not found", { status: 404 });
      if (range === "bytes=0-0") {
        return new Response(zip.slice(0, 1), {
          status: 206,
          headers: { "content-range": `bytes 0-0/${zip.length}` },
        });
      }
      return new Response(zip);
    });
    const mirror = `http://${server.addr.hostname}:${server.addr.port}`;
    const host = await connect(hosts[2]);
    try {
      await sh(host, `rm -rf ${RIG_CACHE}`);
      const reports: BootstrapPhaseReport[] = [];
      const result = await bootstrap(
        host,
        await plan({ deno: "client" }, RIG_CACHE),
        (e) => reports.push(e),
        { ...OFFLINE, denoDownloadUrl: mirror },
      );
      assert.ok(statuses(reports).includes("deno:completed"));
      assert.deepEqual(requests, [
        `GET ${zipPath} bytes=0-0`, // the probe
        `GET ${zipPath}`,
      ]);
      assert.match(
        await sh(host, `cat ${RIG_CACHE}/logs/deno.log`),
        new RegExp(
          `^Downloading ${mirror}${zipPath.replaceAll(".", "\\.")}$`,
          "m",
        ),
      );
      assert.match(
        await sh(host, `${shellQuote([result.denoPath])} --version`),
        new RegExp(`^deno ${Deno.version.deno.replaceAll(".", "\\.")} `),
      );
    } finally {
      await host.close();
      await server.shutdown();
    }
  },
);

rigTest(
  "the tests leave the hosts clean: no cache directory of theirs, no processes",
  async (hosts) => {
    for (const rigHost of hosts) {
      const host = await connect(rigHost);
      try {
        await sh(host, `rm -rf ${RIG_CACHE}`);
        const ps = await sh(host, `ps -o pid=,args= -u "$(id -u)"`);
        const others = ps.split("\n").filter((line) =>
          line.trim() && !/sshd|ps -o|sh -c/.test(line)
        );
        assert.deepEqual(others, [], `processes left on ${rigHost.name}`);
      } finally {
        await host.close();
      }
    }
    await rig!.release();
  },
);

tempDirTest(
  "quickStart() looks at the host and starts the worker in one command when it is ready, and starts nothing when it is not",
  async (dir) => {
    const p = await plan(IMAGE, `${dir}/cache`);
    const host = new CountingHost(new LocalHost(dir));
    // Nothing there yet: one command, which starts no worker.
    assert.equal(await quickStart(host, p, {}), undefined);
    assert.equal(host.execs, 1);
    const { result } = await run(new LocalHost(dir), p);
    host.execs = 0;
    const quick = await quickStart(host, p, {
      SKYWARD_INSTANCE: JSON.stringify({ node: 0, totalNodes: 1 }),
    });
    assert.ok(quick, "the worker should start on a ready host");
    assert.equal(host.execs, 1);
    const lines: string[] = [];
    const session = new NodeSession(0, quick.channel, {
      log: (_stream, line) => lines.push(line),
      lost: () => {},
    });
    try {
      const hello = await session.handshake({
        code: result.codeHash,
        deno: Deno.version.deno,
        modules: [],
        concurrency: 1,
      });
      // It runs the bootstrapped code, with the image's environment.
      assert.equal(
        decodeURIComponent(new URL(hello.codeUrl).pathname),
        `${result.codeDir}/`,
      );
      assert.equal(quick.env.MODE, "prod");
    } finally {
      session.kill();
      await quick.channel.exited;
    }
    // The ready mark is not taken for the worker's output.
    assert.ok(!lines.some((l) => l.startsWith("R")), lines.join("\n"));
    // A plan with apt packages is left to the bootstrap: no command.
    host.execs = 0;
    const apt = await plan({ ...IMAGE, apt: ["hello"] }, `${dir}/cache`);
    assert.equal(await quickStart(host, apt, {}), undefined);
    assert.equal(host.execs, 0);
  },
);

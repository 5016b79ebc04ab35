import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root = new URL("../", import.meta.url);
const config = fileURLToPath(new URL("deno.json", root));
const logModule = new URL("src/log.ts", root).href;

/** Runs a script importing `src/log.ts` in a child `deno run`. */
async function runChild(
  body: string,
  options: { env?: Record<string, string>; permissions?: string[] } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "skyward_log_test_" });
  try {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(
      script,
      `import { logger } from ${JSON.stringify(logModule)};\n${body}\n`,
    );
    const env: Record<string, string> = { NO_COLOR: "1", ...options.env };
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--cached-only",
        `--config=${config}`,
        ...(options.permissions ?? ["--allow-env"]),
        script,
      ],
      env,
      clearEnv: false,
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const LOGS = `
const log = logger("pool");
log.debug("debug line {n}", { n: 1 });
log.info("info line");
`;

function withoutSkywardLog(): Record<string, string> {
  // The child inherits this process's environment; make sure the switch is
  // not set unless a test sets it.
  return Deno.env.get("SKYWARD_LOG") === undefined ? {} : { SKYWARD_LOG: "" };
}

Deno.test("logger() prints debug lines to stderr with SKYWARD_LOG=debug", async () => {
  const { code, stdout, stderr } = await runChild(LOGS, {
    env: { SKYWARD_LOG: "debug" },
  });
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "");
  assert.match(stderr, /\[DBG\] skyward·pool: debug line 1/);
  assert.match(stderr, /\[INF\] skyward·pool: info line/);
  assert.doesNotMatch(stderr, /LogTape loggers are configured/);
});

Deno.test("logger() prints nothing without SKYWARD_LOG", async () => {
  const { code, stdout, stderr } = await runChild(LOGS, {
    env: withoutSkywardLog(),
  });
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "");
  assert.equal(stderr, "");
});

Deno.test("logger() honours the level of SKYWARD_LOG", async () => {
  const { code, stderr } = await runChild(LOGS, {
    env: { SKYWARD_LOG: "INFO" },
  });
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /debug line/);
  assert.match(stderr, /\[INF\] skyward·pool: info line/);
});

Deno.test("logger() ignores SKYWARD_LOG without --allow-env and does not throw", async () => {
  const { code, stderr } = await runChild(LOGS, {
    env: { SKYWARD_LOG: "debug" },
    permissions: [],
  });
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
});

Deno.test("logger() warns once about an unknown SKYWARD_LOG level", async () => {
  const { code, stderr } = await runChild(LOGS, {
    env: { SKYWARD_LOG: "verbose" },
  });
  assert.equal(code, 0, stderr);
  assert.equal(
    stderr,
    'skyward: ignoring SKYWARD_LOG="verbose": expected one of trace, debug, info, warning, error, fatal\n',
  );
});

Deno.test("logger() leaves a program's own LogTape configuration alone", async () => {
  const { code, stdout, stderr } = await runChild(
    `
import { configure } from "@logtape/logtape";
const log = logger("pool");
const lines: string[] = [];
await configure({
  sinks: { mine: (record) => lines.push(String(record.message.join(""))) },
  loggers: [
    { category: ["skyward"], sinks: ["mine"], lowestLevel: "info" },
    { category: ["logtape", "meta"], lowestLevel: "error" },
  ],
});
log.debug("hidden");
log.info("shown");
console.log(JSON.stringify(lines));
`,
    { env: { SKYWARD_LOG: "debug" } },
  );
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
  assert.equal(stdout.trim(), '["shown"]');
});

Deno.test("logger() puts loggers under the skyward category", async () => {
  const { logger } = await import("../src/log.ts");
  assert.deepEqual(logger().category, ["skyward"]);
  assert.deepEqual(logger("pool", "scheduler").category, [
    "skyward",
    "pool",
    "scheduler",
  ]);
  assert.deepEqual(logger("pool").getChild("ssh").category, [
    "skyward",
    "pool",
    "ssh",
  ]);
});

Deno.test("logger() with SKYWARD_LOG prints a logged error's control characters escaped", async () => {
  const { code, stderr } = await runChild(
    `logger("pool").warn("Node lost: {error} ({text})", {
  error: new Error("\\x1b]0;pwned\\x07gone\\x1b[2J"),
  text: "\\x1b[31mred",
});`,
    { env: { SKYWARD_LOG: "warning" } },
  );
  assert.equal(code, 0, stderr);
  assert.ok(
    !stderr.includes("\x1b") && !stderr.includes("\x07"),
    JSON.stringify(stderr),
  );
  assert.match(stderr, /Node lost: Error: \\x1b\]0;pwned\\x07gone\\x1b\[2J/);
  assert.match(stderr, /"\\x1b\[31mred"/);
});

import assert from "node:assert/strict";
import {
  type ConsoleOptions,
  createConsole,
  defaultConsoleMode,
  type WritableLike,
} from "../src/pool/console.ts";
import { type EventInit, formatEvent, type PoolEvent } from "../src/events.ts";

/** An in-memory stream that takes at most `chunk` bytes per write. */
class MemoryWriter implements WritableLike {
  readonly writes: string[] = [];
  #bytes: number[] = [];
  constructor(readonly chunk = Infinity, readonly terminal = false) {}
  writeSync(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.chunk);
    this.#bytes.push(...bytes.subarray(0, n));
    this.writes.push(new TextDecoder().decode(bytes.subarray(0, n)));
    return n;
  }
  isTerminal(): boolean {
    return this.terminal;
  }
  get text(): string {
    return new TextDecoder().decode(new Uint8Array(this.#bytes));
  }
}

/** The status line last drawn: what follows the last clear or newline. */
function lastStatus(text: string): string {
  return text.split("\r\x1b[2K").at(-1)!.split("\n").at(-1)!;
}

function stamp(event: EventInit): PoolEvent {
  return { ...event, time: 0, pool: "pool-1" } as PoolEvent;
}

const EVENTS: PoolEvent[] = [
  { type: "ClusterProvisioned", provider: "local", nodes: 2 },
  { type: "NodeReady", node: 0, instance: "i-0", pid: 10, hostname: "h0" },
  { type: "NodeReady", node: 1, instance: "i-1", pid: 11, hostname: "h1" },
  { type: "ClusterReady", nodes: 2, elapsedMs: 310 },
  { type: "TaskStarted", task: 1, name: "square", node: 1 },
  { type: "Log", node: 1, task: 1, stream: "stdout", line: "computing" },
  { type: "Log", node: 1, task: 1, stream: "stderr", line: "warning: slow" },
  { type: "TaskCompleted", task: 1, name: "square", node: 1, elapsedMs: 12 },
  { type: "ClusterDestroyed", elapsedMs: 1500 },
].map((e) => stamp(e as EventInit));

function run(
  mode: "rich" | "log" | "silent",
  events: PoolEvent[],
  options: ConsoleOptions = {},
): { stderr: MemoryWriter; stdout: MemoryWriter } {
  const stderr = new MemoryWriter();
  const stdout = new MemoryWriter();
  const sink = createConsole(mode, { stderr, stdout, ...options });
  for (const event of events) sink.event(event);
  sink.close();
  return { stderr, stdout };
}

Deno.test('createConsole("log") prints one formatted line per event to stderr, leaving out TaskStarted', () => {
  const { stderr, stdout } = run("log", EVENTS);
  assert.equal(
    stderr.text,
    [
      "[ClusterProvisioned] Cluster prepared on local for 2 node(s)",
      "[NodeReady] Node 0 ready (h0, pid 10)",
      "[NodeReady] Node 1 ready (h1, pid 11)",
      "[ClusterReady] Cluster ready with 2 node(s) in 310ms",
      "[node 1] warning: slow",
      "[TaskCompleted] Task 1 'square' completed in 12ms",
      "[ClusterDestroyed] Cluster terminated (1.5s)",
      "",
    ].join("\n"),
  );
  assert.equal(stdout.text, "[node 1] computing\n");
  for (
    const event of EVENTS.filter((e) =>
      e.type !== "Log" && e.type !== "TaskStarted"
    )
  ) {
    assert.ok(stderr.text.includes(formatEvent(event) + "\n"));
  }
});

Deno.test('createConsole("log") writes each line in a single write call when it can', () => {
  const { stderr } = run("log", EVENTS);
  for (const write of stderr.writes) {
    assert.ok(write.endsWith("\n"));
    assert.equal(write.indexOf("\n"), write.length - 1);
  }
});

Deno.test('createConsole("log") finishes a line over short writes', () => {
  const stderr = new MemoryWriter(3);
  const sink = createConsole("log", { stderr, stdout: new MemoryWriter() });
  sink.event(EVENTS[3]);
  sink.close();
  assert.equal(
    stderr.text,
    "[ClusterReady] Cluster ready with 2 node(s) in 310ms\n",
  );
});

Deno.test('createConsole("log") prefixes every line of a multi-line Log event', () => {
  const { stdout } = run("log", [
    stamp({ type: "Log", node: 3, stream: "stdout", line: "a\nb\n" }),
  ]);
  assert.equal(stdout.text, "[node 3] a\n[node 3] b\n");
});

Deno.test('createConsole("log") ignores events after close and a writer that throws', () => {
  const stderr = new MemoryWriter();
  const sink = createConsole("log", { stderr, stdout: new MemoryWriter() });
  sink.close();
  sink.event(EVENTS[0]);
  assert.equal(stderr.text, "");
  const broken = createConsole("log", {
    stderr: {
      writeSync() {
        throw new Deno.errors.BrokenPipe("closed");
      },
    },
  });
  broken.event(EVENTS[0]);
  broken.close();
});

Deno.test('createConsole("silent") prints nothing', () => {
  const { stderr, stdout } = run("silent", EVENTS, { isTty: true });
  assert.equal(stderr.text, "");
  assert.equal(stdout.text, "");
});

Deno.test('createConsole("rich") behaves exactly like "log" when not on a terminal', () => {
  const log = run("log", EVENTS);
  const rich = run("rich", EVENTS, { isTty: false });
  assert.equal(rich.stderr.text, log.stderr.text);
  assert.equal(rich.stdout.text, log.stdout.text);
  const detected = run("rich", EVENTS);
  assert.equal(detected.stderr.text, log.stderr.text, "isTerminal() is false");
});

Deno.test('createConsole("rich") draws a status line on a terminal and clears it on close', async () => {
  const stderr = new MemoryWriter(Infinity, true);
  const stdout = new MemoryWriter();
  const sink = createConsole("rich", { stderr, stdout, color: false });
  for (const event of EVENTS.slice(0, 2)) sink.event(event);
  // The status line follows the first event at once, as it stood then.
  assert.match(
    stderr.text,
    /^\[ClusterProvisioned\] Cluster prepared on local for 2 node\(s\)\nskyward · nodes 0\/2 ready · tasks 0 running, 0 completed, 0 failed · \d+s/,
  );
  // Each later line is printed above it: clear, line, status again, with
  // the counts as they are after that event.
  assert.ok(
    stderr.text.includes(
      "\r\x1b[2K[NodeReady] Node 0 ready (h0, pid 10)\nskyward · nodes 1/2",
    ),
  );
  assert.match(
    lastStatus(stderr.text),
    /^skyward · nodes 1\/2 ready · tasks 0 running, 0 completed, 0 failed · \d+s$/,
  );
  for (const event of EVENTS.slice(2)) sink.event(event);
  // A task's stdout line goes to stdout, between clearing and redrawing.
  assert.equal(stdout.text, "[node 1] computing\n");
  assert.ok(stderr.text.includes("[node 1] warning: slow\n"));
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.match(stderr.text, /tasks 0 running, 1 completed, 0 failed · \d+s$/);
  const before = stderr.text.length;
  sink.close();
  assert.equal(stderr.text.slice(before), "\r\x1b[2K");
  sink.close();
  sink.event(EVENTS[0]);
  assert.equal(stderr.text.length, before + "\r\x1b[2K".length);
});

Deno.test('createConsole("rich") counts running and failed tasks', async () => {
  const stderr = new MemoryWriter(Infinity, true);
  const sink = createConsole("rich", {
    stderr,
    stdout: new MemoryWriter(),
    color: false,
    columns: 200,
  });
  sink.event(stamp({ type: "TaskStarted", task: 1, name: "f", node: 0 }));
  sink.event(stamp({ type: "TaskStarted", task: 2, name: "f", node: 0 }));
  sink.event(stamp({
    type: "TaskFailed",
    task: 2,
    name: "f",
    node: 0,
    elapsedMs: 5,
    error: "RemoteError",
    message: "Error: boom",
  }));
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.match(
    lastStatus(stderr.text),
    /^skyward · nodes 0\/0 ready · tasks 1 running, 0 completed, 1 failed · \d+s$/,
  );
  sink.close();
});

Deno.test('createConsole("rich") cuts the status line to the terminal width', () => {
  const stderr = new MemoryWriter(Infinity, true);
  const sink = createConsole("rich", {
    stderr,
    stdout: new MemoryWriter(),
    color: false,
    columns: 20,
  });
  sink.event(EVENTS[0]);
  assert.equal(lastStatus(stderr.text), "skyward · nodes 0/2");
  sink.close();
});

Deno.test('createConsole("rich") colours lines on a terminal unless told not to', () => {
  const stderr = new MemoryWriter(Infinity, true);
  const sink = createConsole("rich", {
    stderr,
    stdout: new MemoryWriter(),
    color: true,
  });
  sink.event(EVENTS[1]);
  sink.close();
  assert.ok(stderr.text.startsWith("\x1b[32m[NodeReady] Node 0 ready"));
});

Deno.test("createConsole() rejects an unknown mode", () => {
  assert.throws(
    () => createConsole("fancy" as "log"),
    {
      name: "RangeError",
      message: /'mode' must be one of "rich", "log", "silent", got "fancy"/,
    },
  );
});

Deno.test("defaultConsoleMode() is rich on a terminal and log otherwise", () => {
  assert.equal(
    defaultConsoleMode(),
    Deno.stderr.isTerminal() ? "rich" : "log",
  );
});

const FORGED: PoolEvent[] = [
  {
    type: "Log",
    node: 0,
    task: 1,
    stream: "stdout",
    line: "\x1b[2K\r[TaskCompleted] Task 99 'forged' completed in 0.0s",
  },
  {
    type: "Log",
    node: 0,
    task: 1,
    stream: "stderr",
    line: "\x1b]0;pwned\x07title \u202eset\x9b",
  },
  {
    type: "TaskFailed",
    task: 1,
    name: "evil\x1b[8m",
    node: 0,
    message: "Error: \x1b[2Jcleared\nsecond line",
  },
].map((e) => stamp(e as EventInit));

Deno.test('createConsole("log") shows control characters of task output escaped, so a task cannot forge lines or set the title', () => {
  const { stderr, stdout } = run("log", FORGED);
  assert.equal(
    stdout.text,
    "[node 0] \\x1b[2K\\r[TaskCompleted] Task 99 'forged' completed in 0.0s\n",
  );
  assert.equal(
    stderr.text,
    [
      "[node 0] \\x1b]0;pwned\\x07title \\u202eset\\x9b",
      "[TaskFailed] Task 1 'evil\\x1b[8m' failed on node 0: Error: \\x1b[2Jcleared",
      "second line",
      "",
    ].join("\n"),
  );
});

Deno.test('createConsole("rich") keeps its own colours and escapes those of task output', () => {
  const { stderr, stdout } = run("rich", FORGED, { isTty: true, color: true });
  // Task output: no escape character reaches the terminal.
  assert.ok(!stdout.text.includes("\x1b"), JSON.stringify(stdout.text));
  assert.match(stdout.text, /\\x1b\[2K\\r\[TaskCompleted\]/);
  const lines = stderr.text.split("\n");
  const failed = lines.find((l) => l.includes("[TaskFailed]"))!;
  // The library's red around the line, the task's sequences shown escaped.
  assert.ok(failed.includes("\x1b[31m[TaskFailed]"), JSON.stringify(failed));
  assert.ok(failed.includes("\\x1b[2J"), JSON.stringify(failed));
  assert.ok(
    !stderr.text.includes("\x1b[2J") && !stderr.text.includes("\x1b[8m"),
    JSON.stringify(stderr.text),
  );
  assert.ok(!stderr.text.includes("\x07"));
});

Deno.test('createConsole("rich") draws its status line with the counts as they are, and console output goes above it', () => {
  const stderr = new MemoryWriter(Infinity, true);
  const stdout = new MemoryWriter(Infinity, true);
  const sink = createConsole("rich", {
    stderr,
    stdout,
    isTty: true,
    color: false,
  });
  const original = console.log;
  try {
    for (const event of EVENTS.slice(0, 8)) sink.event(event);
    // Drawn at once with the task just completed, not a timer tick later.
    assert.match(lastStatus(stderr.text), /0 running, 1 completed/);
    const before = stderr.text.length;
    console.log("from the program");
    // The status line is erased before the program's line, drawn after it.
    assert.equal(
      stderr.text.slice(before),
      "\r\x1b[2K" + lastStatus(stderr.text),
    );
  } finally {
    sink.close();
  }
  assert.equal(console.log, original, "the console is given back on close");
});

/** Runs tmux on a server of its own, named after this process. */
async function tmux(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("tmux", {
    args: ["-L", `skyward-test-${Deno.pid}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `tmux ${args[0]} failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return new TextDecoder().decode(stdout);
}

Deno.test({
  name:
    "rich console under a terminal: the program's output lands above the status line, whose counts are current, and task output cannot rewrite the screen",
  ignore: (await new Deno.Command("sh", { args: ["-c", "command -v tmux"] })
    .output()).code !== 0,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "skyward-rich-" });
    const script = new URL("./fixtures/rich_script.ts", import.meta.url)
      .pathname;
    const env = ["DENO_DIR", "XDG_CACHE_HOME", "HOME", "PATH"]
      .map((name) => `${name}=${JSON.stringify(Deno.env.get(name) ?? "")}`)
      .join(" ");
    const command = `env ${env} NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 ` +
      `deno run -A --unstable-worker-options ${script} ${root}; ` +
      `echo EXIT-$?; sleep 600`;
    await tmux(
      "new-session",
      "-d",
      "-s",
      "rich",
      "-x",
      "160",
      "-y",
      "40",
      command,
    );
    try {
      let screen = "";
      for (let i = 0; i < 600 && !screen.includes("user: waiting"); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = await tmux("capture-pane", "-p", "-t", "rich");
      }
      const lines = screen.split("\n").filter((l) => l.trim() !== "");
      const shown = lines.join("\n");
      // Each of the program's lines is a line of its own, in order.
      const user = lines.filter((l) => l.includes("user:"));
      assert.deepEqual(user, [
        "user: pool started",
        "user: task 1 done",
        "user: task 2 done",
        "user: task 3 done",
        "user: waiting for Enter",
      ], shown);
      // The status line is last, drawn after the last task completed.
      assert.match(lines.at(-1)!, /^skyward · nodes 1\/1 ready/, shown);
      assert.match(lines.at(-1)!, /0 running, 4 completed, 0 failed/, shown);
      // The forged lines are shown as text, prefixed by their node.
      assert.ok(
        lines.some((l) =>
          l.startsWith(
            "[node 0] \\x1b[2K\\r[TaskCompleted] Task 99 'forged' completed",
          )
        ),
        shown,
      );
      assert.ok(!lines.some((l) => l.startsWith("[TaskCompleted] Task 99")));
      assert.ok(lines.some((l) => l.includes("\\x1b]0;pwned\\x07title set")));
      assert.notEqual(
        (await tmux("display-message", "-p", "-t", "rich", "#{pane_title}"))
          .trim(),
        "pwned",
      );
      await tmux("send-keys", "-t", "rich", "Enter");
      for (let i = 0; i < 300 && !screen.includes("EXIT-"); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = await tmux("capture-pane", "-p", "-t", "rich");
      }
      assert.match(screen, /EXIT-0/);
    } finally {
      await tmux("kill-server").catch(() => {});
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test('createConsole("rich") shows the spend and the rate once the pool reported a Cost, and prints budget lines', () => {
  const stderr = new MemoryWriter(Infinity, true);
  const sink = createConsole("rich", {
    stderr,
    stdout: new MemoryWriter(),
    color: false,
    columns: 200,
  });
  sink.event(stamp({ type: "ClusterReady", nodes: 1, elapsedMs: 5 }));
  assert.doesNotMatch(lastStatus(stderr.text), /\$/);
  sink.event(stamp({
    type: "Cost",
    spent: 0.4213,
    ratePerHour: 1.2,
    nodes: [{ node: 0, instanceId: "i-0", pricePerHour: 1.2, spent: 0.4213 }],
  }));
  assert.match(lastStatus(stderr.text), / · \$0\.42 \(\$1\.20\/h\)$/);
  sink.event(
    stamp({ type: "BudgetWarning", spent: 8, warnAt: 8, maxCost: 10 }),
  );
  assert.match(
    stderr.text,
    /\[BudgetWarning\] Spent \$8\.00 of the \$10\.00 budget \(warning at \$8\.00\)\n/,
  );
  sink.close();
});

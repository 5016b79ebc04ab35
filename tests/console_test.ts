import assert from "node:assert/strict";
import {
  type ConsoleOptions,
  createConsole,
  defaultConsoleMode,
  type WritableLike,
} from "../src/console.ts";
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
  // Each later line is printed above it: clear, line, status again.
  assert.ok(
    stderr.text.includes(
      "\r\x1b[2K[NodeReady] Node 0 ready (h0, pid 10)\nskyward · nodes 0/2",
    ),
  );
  // Within 100 ms the timer redraws it with the new counts.
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.ok(stderr.text.endsWith(`\r\x1b[2K${lastStatus(stderr.text)}`));
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

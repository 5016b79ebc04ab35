/**
 * The live dashboard: served by a pool on 127.0.0.1 behind a token, drawn in
 * a real Chromium (Debian's `chromium`, driven by `puppeteer-core`), and
 * served by `skyward dashboard <file>` from an event log as it grows.
 *
 * Without /usr/bin/chromium the browser test is ignored with the reason
 * printed; under `CI=true` that is a failure instead. Set
 * `SKYWARD_DASHBOARD_SCREENSHOT=docs/dashboard.png` to save the page as the
 * browser test sees it (the screenshot of the docs).
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.19.0";
import * as sky from "../mod.ts";
import { main } from "../cli.ts";
import { dashboardCommand } from "../src/dashboard/command.ts";
import { followEventLog } from "../src/dashboard/event_log.ts";
import { poolInfo } from "../src/dashboard/watch.ts";
import { resolveOptions } from "../src/pool/options.ts";
import { DashboardState, type Snapshot } from "../src/dashboard/state.ts";
import { failing, shout, sleep, square } from "./fixtures/computes.ts";
import { alive, eventually, localPools, tempRoot } from "./helpers.ts";

const root = await tempRoot();
const CHROMIUM = "/usr/bin/chromium";
const haveChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
const underCi = Deno.env.get("CI") === "true";
if (!haveChromium && !underCi) {
  console.error(
    `dashboard_test: ${CHROMIUM} is missing (apt-get install chromium): the browser test is ignored`,
  );
}

/**
 * A test that drives Chromium: ignored where it is missing, but under CI,
 * where a missing Chromium is a failure.
 */
function browserTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name,
    ignore: !haveChromium && !underCi,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      if (!haveChromium) {
        throw new Error(
          `${CHROMIUM} is missing: CI installs Debian's chromium package`,
        );
      }
      await fn();
    },
  });
}

const start = localPools(root);

/** Reads the views a dashboard's event stream sends, one at a time. */
async function viewsOf(url: string, signal?: AbortSignal, page = "test") {
  const response = await fetch(`${url}events?page=${page}`, { signal });
  assert.equal(response.status, 200);
  assert.match(
    response.headers.get("content-type") ?? "",
    /text\/event-stream/,
  );
  const lines = response.body!.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffer = "";
  return {
    /** The next view, or undefined once the stream ended. */
    async next(): Promise<Snapshot | undefined> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data: "))
            .map((l) => l.slice(6)).join("\n");
          if (data) return JSON.parse(data);
          continue;
        }
        const { done, value } = await lines.read();
        if (done) return undefined;
        buffer += value;
      }
    },
    /** Views until one satisfies `check`. */
    async until(check: (view: Snapshot) => boolean): Promise<Snapshot> {
      for (;;) {
        const view = await this.next();
        if (!view) throw new Error("the event stream ended first");
        if (check(view)) return view;
      }
    },
  };
}

Deno.test("the dashboard refuses every request without its token, serves its files itself, and stops listening with the pool", async () => {
  const pool = await start({ dashboard: true });
  try {
    const url = pool.dashboardUrl!;
    const match = url.match(/^http:\/\/127\.0\.0\.1:(\d+)\/([0-9a-f]{32})\/$/);
    assert.ok(match, url);
    const [, port, token] = match;
    const base = `http://127.0.0.1:${port}`;
    for (
      const path of [
        "/",
        "/events",
        "/app.js",
        `/${token.slice(0, -1)}/`,
        // The token with its last digit changed.
        `/${token.slice(0, -1)}${token.endsWith("0") ? "1" : "0"}/events`,
        `/${"0".repeat(32)}/uplot.js`,
        `/x/${token}/`,
      ]
    ) {
      const response = await fetch(base + path);
      const body = await response.text();
      assert.equal(response.status, 403, path);
      assert.ok(!body.includes(token), path);
      assert.match(body, /token/);
    }
    const page = await fetch(url);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<title>Skyward dashboard<\/title>/);
    // Nothing from a CDN: the page and its files name no other host.
    assert.doesNotMatch(html, /https?:\/\//);
    assert.match(
      page.headers.get("content-security-policy") ?? "",
      /default-src 'self'/,
    );
    for (const file of ["app.js", "app.css", "uplot.js", "uplot.css"]) {
      const response = await fetch(url + file);
      assert.equal(response.status, 200, file);
      const text = await response.text();
      assert.ok(text.length > 500, file);
      if (file.startsWith("app")) assert.doesNotMatch(text, /https?:\/\//);
      else assert.match(text, /uplot/i);
    }
  } finally {
    await pool.close();
  }
  await assert.rejects(fetch(pool.dashboardUrl!), TypeError);
});

browserTest(
  "a browser shows a 2-node pool: both nodes ready, the done count rising during a map, a failed task with its error, a node's logs, and the pool closed",
  async () => {
    let browser: Browser | undefined;
    let pool: sky.ComputePool | undefined;
    try {
      // Priced nodes and a budget, so that the page shows spend.
      pool = await start({
        provider: sky.Local({ root, pricePerHour: 0.5 }),
        nodes: 2,
        dashboard: true,
        budget: { maxCost: 5 },
        costInterval: 500,
      });
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
      });
      const page: Page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      // Every file the page loads comes from the pool.
      const elsewhere: string[] = [];
      page.on("request", (request) => {
        if (!request.url().startsWith(pool!.dashboardUrl!)) {
          elsewhere.push(request.url());
        }
      });
      await page.goto(pool.dashboardUrl!);
      // What a person reads: the rendered text of an element.
      const text = (selector: string) =>
        page.$eval(
          selector,
          (e) => (e as unknown as { innerText: string }).innerText,
        );
      const texts = (selector: string) =>
        page.$$eval(
          selector,
          (es) =>
            es.map((e) => (e as unknown as { innerText: string }).innerText),
        );
      /** Waits until the element's text holds `part`. */
      const showing = (selector: string, part: string) =>
        page.waitForFunction(
          `document.querySelector(${
            JSON.stringify(selector)
          })?.innerText.includes(${JSON.stringify(part)})`,
        );

      // Both nodes ready, as a person reads the table.
      await page.waitForFunction(
        `[...document.querySelectorAll("#nodes tbody tr")]
        .filter((row) => row.innerText.includes("ready")).length === 2`,
      );
      assert.equal(await text("#nodes-ready"), "2/2");
      const rows = await texts("#nodes tbody tr");
      assert.equal(rows.length, 2);
      assert.match(rows[0], /^0 \(head\)\s+ready\s+local-sky-/);
      assert.match(rows[1], /^1\s+ready\s+local-sky-.*\slocal\s/);
      assert.match(await text("#status"), /Running/);
      assert.match(rows[0], /\$0\.50\/h/);
      assert.equal(await text("#budget"), "$5.00");
      assert.equal(await text("#budget-state"), "warns at $4.00");
      // The bootstrap timeline: a lane per node, with its phases.
      const lanes = await texts("#timeline .lane");
      assert.equal(lanes.length, 2);
      assert.match(lanes[0], /node 0[\s\S]*worker/);

      // The done count rises while a map runs.
      const seen: number[] = [];
      let finished = false;
      const mapped = pool.map(sleep, Array.from({ length: 40 }, () => 150))
        .then((r) => {
          finished = true;
          return r;
        });
      while (!finished) {
        const done = Number(await text("#tasks-done"));
        if (!finished && done !== seen.at(-1)) seen.push(done);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await mapped).length, 40);
      const during = seen.filter((n) => n > 0 && n < 40);
      assert.ok(during.length >= 2, `done counts seen: ${seen.join(", ")}`);
      assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
      await page.waitForFunction(
        `document.getElementById("tasks-done").innerText === "40"`,
      );
      // Spend, from the pool's Cost events: the two nodes' rate.
      await showing("#rate", "$1.00/h now");
      assert.match(await text("#spent"), /^\$0\.\d+$/);
      // The chart drew the throughput.
      assert.ok(await page.$("#chart .uplot canvas"));

      // A failed task, shown with its error.
      await assert.rejects(pool.run(failing(3)), sky.RemoteError);
      await showing("#failures", "only 3 left");
      assert.equal(await text("#tasks-failed"), "1");
      assert.match(
        await text("#failures"),
        /task \d+ 'failing' on node [01]: RemoteError InventoryError: only 3 left/,
      );

      // A node's log lines, as they come.
      await pool.run(shout("hello from the dashboard test"));
      await showing("#logs", "hello from the dashboard test");

      const screenshot = Deno.env.get("SKYWARD_DASHBOARD_SCREENSHOT");
      if (screenshot) {
        await page.screenshot({ path: screenshot, fullPage: true });
      }

      // The pool closes: the page says so.
      await pool.close();
      await showing("#banner", "pool closed");
      assert.equal(await text("#status"), "Closed");
      assert.match(await text("#nodes tbody"), /released/);
      assert.deepEqual(errors, []);
      assert.deepEqual(elsewhere, []);
      // Chromium ends with the test.
      const pid = browser.process()?.pid;
      await browser.close();
      browser = undefined;
      assert.ok(pid !== undefined && !(await alive(pid)));
    } finally {
      await browser?.close();
      await pool?.close();
    }
  },
);

Deno.test("a program whose pool serves a dashboard still ends once its work is done, also while a page watches, and the page learns the pool closed", async () => {
  // The script leaves its pool open: neither the listener nor a page's
  // stream may hold the program (the teardown closes the pool as it ends).
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fixtures/dashboard_script.ts", import.meta.url).pathname,
      root,
      "3000",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Killed if held: the assertion below then fails.
  const held = setTimeout(() => child.kill(), 60_000);
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { done, value } = await lines.read();
      if (done) break;
      out += value;
    }
    const url = out.split("\n")[0];
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}\/$/);
    // A page: reads views, reconnecting as EventSource does, until the
    // server is gone.
    const views: Snapshot[] = [];
    for (;;) {
      let stream;
      try {
        stream = await viewsOf(`${url}`, undefined, "watcher");
      } catch {
        break;
      }
      for (let view = await stream.next(); view; view = await stream.next()) {
        views.push(view);
      }
      if (views.at(-1)?.closedAt !== undefined) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    for (;;) {
      const { done, value } = await lines.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    assert.equal(out.split("\n")[1], "3000");
    assert.equal(status.signal, null, "the program was held open and killed");
    assert.equal(status.code, 0);
    assert.ok(views.some((v) => v.tasks.running === 1), "saw the task run");
    assert.ok(views.at(-1)?.closedAt, "the page learnt that the pool closed");
    await assert.rejects(fetch(url), TypeError);
  } finally {
    clearTimeout(held);
    await child.stderr.cancel();
  }
});

Deno.test("a pool's event log holds the pool, its events and its close, one JSON object a line", async () => {
  const dir = await Deno.makeTempDir({ dir: root });
  const file = `${dir}/run.jsonl`;
  {
    await using pool = await start({ eventLog: file });
    assert.equal(pool.dashboardUrl, undefined);
    assert.equal(await pool.run(square(3)), 9);
  }
  const records = (await Deno.readTextFile(file)).trim().split("\n").map((
    line,
  ) => JSON.parse(line));
  assert.equal(records[0].type, "PoolInfo");
  assert.equal(records[0].provider, "local");
  const types = records.map((r) => r.type);
  for (const type of ["NodeReady", "TaskStarted", "TaskCompleted"]) {
    assert.ok(types.includes(type), type);
  }
  assert.equal(types.at(-1), "ClusterDestroyed");
});

Deno.test("skyward dashboard follows an event log as it grows and serves the same page", async () => {
  const dir = await Deno.makeTempDir({ dir: root });
  const file = `${dir}/run.jsonl`;
  const record = (r: object) =>
    Deno.writeTextFile(file, JSON.stringify(r) + "\n", { append: true });
  const pool = { pool: "sky-test" };
  await record({
    type: "PoolInfo",
    time: 1_000,
    ...pool,
    provider: "aws",
    accelerator: "T4",
    nodes: 1,
  });
  await record({
    type: "InstanceLaunched",
    time: 1_100,
    ...pool,
    node: 0,
    instance: "i-0abc",
    pricePerHour: 0.526,
  });
  const stop = new AbortController();
  const printed: string[] = [];
  const command = dashboardCommand([file], {
    signal: stop.signal,
    print: (line) => printed.push(line),
  });
  try {
    await eventually(() => printed.length > 0, 10_000, "the address");
    const url = printed[0].replace(/^Dashboard: /, "");
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}\/$/);
    assert.equal((await fetch(url.replace(/[0-9a-f]{32}\/$/, ""))).status, 403);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    await page.text();
    const views = await viewsOf(url, stop.signal);
    let view = await views.until((v) => v.nodes.length === 1);
    assert.equal(view.nodes[0].state, "launching");
    assert.equal(view.nodes[0].pricePerHour, 0.526);
    assert.equal(view.accelerator, "T4");
    // The file grows: the page follows, partial lines included.
    await record({
      type: "NodeReady",
      time: 1_500,
      ...pool,
      node: 0,
      instance: "i-0abc",
      pid: 9,
      hostname: "ip-10-0-0-5",
    });
    await record({
      type: "TaskStarted",
      time: 1_600,
      ...pool,
      task: 1,
      name: "f",
      node: 0,
    });
    // Half a line: read once it is whole.
    await Deno.writeTextFile(file, '{"type":"TaskComp', { append: true });
    view = await views.until((v) =>
      v.nodes[0].state === "ready" && v.tasks.running === 1
    );
    assert.equal(view.nodes[0].hostname, "ip-10-0-0-5");
    await Deno.writeTextFile(
      file,
      `leted","time":1700,"pool":"sky-test","task":1,"name":"f","node":0,"elapsedMs":5}\n`,
      { append: true },
    );
    view = await views.until((v) => v.tasks.done === 1);
    await record({
      type: "ClusterDestroyed",
      time: 2_000,
      ...pool,
      elapsedMs: 1000,
    });
    view = await views.until((v) => v.closedAt !== undefined);
    assert.equal(view.nodes[0].state, "released");
  } finally {
    stop.abort();
  }
  assert.equal(await command, 0);
});

browserTest(
  "a browser shows a finished run from its event log through skyward dashboard: the nodes released, the tasks, the failure, the pool closed",
  async () => {
    const dir = await Deno.makeTempDir({ dir: root });
    const file = `${dir}/run.jsonl`;
    {
      await using pool = await start({ eventLog: file });
      assert.equal(await pool.run(square(5)), 25);
      await assert.rejects(pool.run(failing(0)), sky.RemoteError);
    }
    const stop = new AbortController();
    const printed: string[] = [];
    const command = dashboardCommand([file, "--port", "0"], {
      signal: stop.signal,
      print: (line) => printed.push(line),
    });
    let browser: Browser | undefined;
    try {
      await eventually(() => printed.length > 0, 10_000, "the address");
      const url = printed[0].replace(/^Dashboard: /, "");
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
      });
      const page = await browser.newPage();
      await page.goto(url);
      await page.waitForFunction(
        `document.getElementById("banner").innerText.includes("pool closed")`,
      );
      const text = (selector: string) =>
        page.$eval(
          selector,
          (e) => (e as unknown as { innerText: string }).innerText,
        );
      assert.equal(await text("#status"), "Closed");
      assert.match(await text("#nodes tbody"), /^0 \(head\)\s+released/);
      assert.equal(await text("#tasks-done"), "1");
      assert.equal(await text("#tasks-failed"), "1");
      assert.match(
        await text("#failures"),
        /'failing' on node 0: RemoteError InventoryError: only 0 left/,
      );
    } finally {
      await browser?.close();
      stop.abort();
    }
    assert.equal(await command, 0);
  },
);

Deno.test("skyward dashboard refuses a missing file and a bad port, naming what to fix", async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (line: string) => errors.push(line);
  try {
    assert.equal(await main(["dashboard", `${root}/nothing.jsonl`]), 2);
    assert.match(errors.at(-1)!, /nothing\.jsonl.*eventLog/);
    assert.equal(await main(["dashboard"]), 2);
    assert.match(errors.at(-1)!, /needs the event log's path/);
    assert.equal(await main(["dashboard", "x.jsonl", "--port", "http"]), 2);
    assert.match(errors.at(-1)!, /--port must be a port number.*'http'/);
  } finally {
    console.error = original;
  }
});

Deno.test("bad dashboard and eventLog options are refused before anything starts", async () => {
  await assert.rejects(
    start({ dashboard: { port: 70_000 } }),
    (e: Error) =>
      e instanceof sky.ConfigError &&
      /'dashboard\.port'.*70000/.test(e.message),
  );
  await assert.rejects(
    start({ dashboard: "yes" as unknown as boolean }),
    (e: Error) => e instanceof sky.ConfigError && /'dashboard'/.test(e.message),
  );
  await assert.rejects(
    start({ eventLog: `${root}/missing-dir/run.jsonl` }),
    (e: Error) =>
      e instanceof sky.ConfigError && /'eventLog'.*missing-dir/.test(e.message),
  );
  // A port already taken.
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      start({ dashboard: { port: taken.addr.port } }),
      (e: Error) =>
        e instanceof sky.ConfigError &&
        new RegExp(`dashboard on 127\\.0\\.0\\.1:${taken.addr.port}`).test(
          e.message,
        ),
    );
  } finally {
    taken.close();
  }
});

Deno.test("the dashboard's view counts spend and the budget from the pool's events", () => {
  const state = new DashboardState();
  const base = { pool: "p" };
  state.apply({
    type: "PoolInfo",
    time: 0,
    ...base,
    provider: "aws",
    nodes: 1,
    budget: { maxCost: 2, warnAt: 1.5 },
  });
  state.apply(
    {
      type: "InstanceLaunched",
      time: 1,
      ...base,
      node: 0,
      instance: "i-1",
      pricePerHour: 1.2,
    },
  );
  assert.equal(state.snapshot().nodes[0].pricePerHour, 1.2);
  assert.deepEqual(state.snapshot().budget, {
    maxCost: 2,
    warnAt: 1.5,
    state: "ok",
  });
  state.apply(
    {
      type: "Cost",
      time: 2,
      ...base,
      spent: 0.5,
      ratePerHour: 1.2,
      nodes: [{ node: 0, instanceId: "i-1", pricePerHour: 1.2, spent: 0.5 }],
    },
  );
  assert.deepEqual(state.snapshot().cost, { spent: 0.5, ratePerHour: 1.2 });
  assert.equal(state.snapshot().nodes[0].spent, 0.5);
  state.apply({
    type: "BudgetLimited",
    time: 2,
    ...base,
    wanted: 2,
    allowed: 1,
    spent: 0.5,
    maxCost: 2,
  });
  assert.deepEqual(state.snapshot().budget?.limited, {
    wanted: 2,
    allowed: 1,
    time: 2,
  });
  assert.equal(state.snapshot().budget?.state, "ok");
  state.apply(
    {
      type: "BudgetWarning",
      time: 3,
      ...base,
      spent: 1.6,
      warnAt: 1.5,
      maxCost: 2,
    },
  );
  assert.equal(state.snapshot().budget?.state, "warning");
  state.apply(
    {
      type: "BudgetExceeded",
      time: 4,
      ...base,
      spent: 2.01,
      maxCost: 2,
    },
  );
  assert.equal(state.snapshot().budget?.state, "exceeded");
  state.apply(
    {
      type: "ClusterDestroyed",
      time: 5,
      ...base,
      elapsedMs: 5,
      cost: 2.02,
    },
  );
  assert.equal(state.snapshot().cost?.spent, 2.02);
  assert.equal(state.snapshot().closedAt, 5);
});

Deno.test("an event log emptied by the next run is read again from its start; lines that are not records are skipped", async () => {
  const dir = await Deno.makeTempDir({ dir: root });
  const file = `${dir}/run.jsonl`;
  const line = (pool: string) =>
    JSON.stringify({ type: "QueueSample", time: 1, pool, queued: 1 }) + "\n";
  await Deno.writeTextFile(file, line("first") + "not json\n{}\n");
  const pools: string[] = [];
  let restarts = 0;
  const stop = new AbortController();
  const following = followEventLog(file, (r) => pools.push(r.pool), {
    signal: stop.signal,
    interval: 20,
    onRestart: () => restarts++,
  });
  try {
    await eventually(() => pools.length === 1, 10_000, "the first record");
    await Deno.writeTextFile(file, line("second"));
    await eventually(() => pools.length === 2, 10_000, "the second run");
    assert.deepEqual(pools, ["first", "second"]);
    assert.equal(restarts, 1);
  } finally {
    stop.abort();
    await following;
  }
});

Deno.test("the throughput counts finished tasks per second, and seconds without one as zero", () => {
  const state = new DashboardState();
  const task = (type: "TaskCompleted" | "TaskFailed", time: number) =>
    state.apply(
      type === "TaskCompleted"
        ? { type, time, pool: "p", task: 1, name: "f", node: 0, elapsedMs: 1 }
        : {
          type,
          time,
          pool: "p",
          task: 1,
          name: "f",
          node: 0,
          elapsedMs: 1,
          error: "RemoteError",
          message: "Error: no",
        },
    );
  task("TaskCompleted", 10_100);
  task("TaskCompleted", 10_900);
  task("TaskFailed", 10_950);
  task("TaskCompleted", 12_500);
  state.apply({ type: "QueueSample", time: 14_000, pool: "p", queued: 0 });
  assert.deepEqual(state.snapshot().throughput, [
    [10, 2, 1],
    [11, 0, 0],
    [12, 1, 0],
    [13, 0, 0],
    [14, 0, 0],
  ]);
  assert.equal(state.snapshot().tasks.done, 3);
  assert.equal(state.snapshot().tasks.failed, 1);
});

Deno.test("the pool's line names the accelerator asked for: the pool's own, or those of its specs, and its budget's warning", () => {
  const info = (options: Partial<sky.PoolOptions>) =>
    poolInfo({
      pool: "p",
      startedAt: 0,
      provider: "aws",
      options: resolveOptions(options),
      events: { [Symbol.asyncIterator]: () => ({} as never) },
      queued: () => 0,
    });
  const local = sky.Local({ root });
  assert.equal(info({ provider: local }).accelerator, undefined);
  assert.equal(
    info({ provider: local, accelerator: sky.accelerators.T4({ count: 2 }) })
      .accelerator,
    "T4:2",
  );
  assert.equal(
    info({
      specs: [
        sky.Spec({ provider: local, accelerator: "A100:8" }),
        sky.Spec({ provider: local, accelerator: "H100:8" }),
        sky.Spec({ provider: local, accelerator: "A100:8" }),
      ],
    }).accelerator,
    "A100:8 or H100:8",
  );
  assert.deepEqual(info({ provider: local, budget: { maxCost: 10 } }).budget, {
    maxCost: 10,
    warnAt: 8,
  });
});

Deno.test("the dashboard shows the accelerator of the offer chosen once the cluster is provisioned, rather than all those asked for", () => {
  const state = new DashboardState();
  const base = { pool: "p" };
  state.apply({
    type: "PoolInfo",
    time: 0,
    ...base,
    provider: "runpod",
    accelerator: "A100:8 or H100:8",
    nodes: 2,
  });
  assert.equal(state.snapshot().accelerator, "A100:8 or H100:8");
  const provisioned: sky.ClusterProvisioned = {
    type: "ClusterProvisioned",
    time: 1,
    ...base,
    provider: "runpod",
    nodes: 2,
    accelerator: "H100:8",
  };
  state.apply(provisioned);
  assert.equal(state.snapshot().accelerator, "H100:8");
  assert.equal(
    sky.formatEvent(provisioned),
    "[ClusterProvisioned] Cluster prepared on runpod for 2 node(s) with H100:8",
  );
});

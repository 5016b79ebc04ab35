// The dashboard's page: draws each view of the pool the server sends over
// server-sent events. Text from the pool (log lines, error messages) is set
// with textContent only, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
};
const money = (n) =>
  n === undefined || n === null
    ? "–"
    : n < 10
    ? `$${n.toFixed(n < 0.01 && n > 0 ? 4 : 2)}`
    : `$${n.toFixed(2)}`;
const clock = (ms) => new Date(ms).toLocaleTimeString();
const seconds = (ms) =>
  ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;

/** Replaces an element's children, only when what it shows changed. */
function fill(target, key, build) {
  if (target.dataset.key === key) return;
  target.dataset.key = key;
  target.replaceChildren(...build());
}

let chart;
function drawChart(series) {
  const recent = series.slice(-300);
  const data = [
    recent.map((b) => b[0]),
    recent.map((b) => b[1]),
    recent.map((b) => b[2]),
  ];
  if (!chart && typeof uPlot === "function") {
    const target = $("chart");
    chart = new uPlot(
      {
        width: Math.max(300, target.clientWidth - 16),
        height: 200,
        series: [
          {},
          {
            label: "Completed/s",
            stroke: "#2f6fde",
            width: 2,
            fill: "rgba(47,111,222,0.08)",
          },
          { label: "Failed/s", stroke: "#c4262e", width: 2 },
        ],
        // Ticks a second or more apart: finished tasks are counted per second.
        axes: [
          {
            space: 70,
            incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600],
          },
          { label: "tasks/s" },
        ],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      },
      data,
      target,
    );
    addEventListener("resize", () =>
      chart.setSize({
        width: Math.max(300, target.clientWidth - 16),
        height: 200,
      }));
  } else if (chart) chart.setData(data);
}

function drawNodes(view) {
  const ready = view.nodes.filter((n) => n.state === "ready").length;
  $("nodes-ready").textContent = `${ready}/${view.nodes.length}`;
  fill(
    $("nodes").tBodies[0],
    JSON.stringify([
      view.nodes.map((
        n,
      ) => [
        n.rank,
        n.state,
        n.instance,
        n.address,
        n.pricePerHour,
        n.spot,
        n.spent,
        n.running,
        n.done,
      ]),
      view.provider,
      view.accelerator,
    ]),
    () =>
      view.nodes.map((n) =>
        el(
          "tr",
          { "data-rank": n.rank },
          el("td", {}, n.rank === 0 ? "0 (head)" : n.rank),
          el("td", { class: `state ${n.state}` }, n.state),
          el("td", {}, n.instance ?? "–"),
          el("td", {}, n.address ?? "–"),
          el("td", {}, view.provider ?? "–"),
          el("td", {}, view.accelerator ?? "none"),
          el(
            "td",
            {},
            n.pricePerHour === undefined
              ? "–"
              : `${money(n.pricePerHour)}/h${n.spot ? " spot" : ""}`,
          ),
          el("td", {}, money(n.spent)),
          el("td", {}, n.running),
          el("td", {}, n.done),
        )
      ),
  );
}

function drawTimeline(view) {
  const phases = view.nodes.flatMap((n) => n.phases);
  const end = Math.max(1, ...phases.map((p) => p.start + (p.elapsedMs ?? 0)));
  const lane = (n) =>
    el(
      "div",
      { class: "lane" },
      el("span", { class: "who" }, `node ${n.rank}`),
      el(
        "div",
        { class: "track" },
        ...n.phases.map((p) =>
          el("span", {
            class: `phase ${p.status}`,
            title: `${p.phase}: ${p.status}${
              p.elapsedMs === undefined ? "" : ` in ${seconds(p.elapsedMs)}`
            }`,
            style: {
              left: `${(100 * Math.max(0, p.start)) / end}%`,
              width: `${(100 * (p.elapsedMs ?? 0)) / end}%`,
            },
          }, p.phase)
        ),
      ),
    );
  fill(
    $("timeline"),
    JSON.stringify(view.nodes.map((n) => n.phases)),
    () =>
      phases.length === 0
        ? [el("p", { class: "muted" }, "No bootstrap phase yet")]
        : [
          el(
            "p",
            { class: "muted scale" },
            `From the pool's start to ${
              seconds(end)
            }; hover a phase for its time`,
          ),
          ...view.nodes.map(lane),
        ],
  );
}

function drawFailures(view) {
  fill(
    $("failures"),
    JSON.stringify(view.failures.map((f) => f.task)),
    () =>
      view.failures.length === 0
        ? [el("li", { class: "muted" }, "None")]
        : view.failures.slice().reverse().map((f) =>
          el(
            "li",
            {},
            `${clock(f.time)} task ${f.task} '${f.name}' on node ${f.node}: `,
            el("span", { class: "error" }, f.error),
            ` ${f.message}`,
          )
        ),
  );
}

function drawLogs(view) {
  const nodes = view.nodes.filter((n) => n.logs.length > 0);
  const target = $("logs");
  if (nodes.length === 0) return;
  for (const n of nodes) {
    let box = target.querySelector(`[data-rank="${n.rank}"]`);
    if (!box) {
      target.querySelector("p.muted")?.remove();
      box = el(
        "div",
        { class: "log", "data-rank": n.rank },
        el("h3", {}, `node ${n.rank}`),
        el("pre"),
      );
      target.append(box);
    }
    const pre = box.querySelector("pre");
    const last = n.logs.at(-1);
    const key = `${n.logs.length}:${last.time}:${last.line}`;
    if (pre.dataset.key === key) continue;
    pre.dataset.key = key;
    const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.replaceChildren(
      ...n.logs.map((l) => el("div", { class: l.stream }, l.line)),
    );
    if (follow) pre.scrollTop = pre.scrollHeight;
  }
}

function draw(view) {
  $("pool").textContent = [view.pool, view.provider].filter(Boolean).join(
    " · ",
  );
  const status = $("status");
  if (view.closedAt) {
    status.textContent = "Closed";
    status.className = "badge closed";
    const banner = $("banner");
    banner.hidden = false;
    banner.className = "";
    banner.textContent = `The pool closed at ${
      clock(view.closedAt)
    }: its machines were released.`;
  } else {
    status.textContent = view.readyAt ? "Running" : "Starting";
    status.className = "badge running";
    $("banner").hidden = true;
  }
  $("tasks-running").textContent = view.tasks.running;
  $("tasks-queued").textContent = view.tasks.queued;
  $("tasks-done").textContent = view.tasks.done;
  $("tasks-failed").textContent = view.tasks.failed;
  $("tasks-failed").classList.toggle("some", view.tasks.failed > 0);
  $("spent").textContent = view.cost ? money(view.cost.spent) : "$0.00";
  $("rate").textContent = view.cost
    ? `${money(view.cost.ratePerHour)}/h now`
    : "";
  if (view.budget) {
    $("budget").textContent = money(view.budget.maxCost);
    $("budget-state").textContent = view.budget.state === "exceeded"
      ? "exceeded: pool stopped"
      : view.budget.state === "warning"
      ? `past the warning at ${money(view.budget.warnAt)}`
      : view.budget.warnAt === undefined
      ? ""
      : `warns at ${money(view.budget.warnAt)}`;
    const limited = view.budget.limited;
    $("budget-limited").hidden = !limited || view.budget.state === "exceeded";
    if (limited) {
      $("budget-limited").textContent =
        `held back a scale-up at ${clock(limited.time)}: ` +
        `${limited.allowed} of ${limited.wanted} node(s) allowed`;
    }
  }
  drawNodes(view);
  drawChart(view.throughput);
  drawTimeline(view);
  drawFailures(view);
  drawLogs(view);
}

// The server ends the stream while the program is idle (so that it does not
// hold a program whose work is done); EventSource then reconnects within a
// second. Only a connection lost for longer is reported.
const pageId = Math.random().toString(36).slice(2);
let closed = false;
let lost;
const source = new EventSource(`events?page=${pageId}`);
source.onmessage = (message) => {
  clearTimeout(lost);
  lost = undefined;
  const view = JSON.parse(message.data);
  draw(view);
  if (view.closedAt) {
    closed = true;
    source.close();
  }
};
source.onerror = () => {
  if (closed || lost !== undefined) return;
  lost = setTimeout(() => {
    const status = $("status");
    status.textContent = "Disconnected";
    status.className = "badge lost";
    const banner = $("banner");
    banner.hidden = false;
    banner.className = "bad";
    banner.textContent =
      "Lost the connection to the pool: the program has probably ended.";
  }, 5_000);
};

// The node lifecycle: one state, and the only changes that can happen.
import assert from "node:assert/strict";
import {
  goneReason,
  isAdmitted,
  isGated,
  isGone,
  isLeaving,
  isReady,
  isStaying,
  type NodeState,
  type PoolNode,
  takesWork,
  transition,
} from "../src/pool/node_state.ts";

const STATES: NodeState[] = [
  "starting",
  "admitting",
  "ready",
  "restarting",
  "retiring",
  "gone",
];

// Written out here, not read from the module: the changes the pool relies
// on, one a line.
const LEGAL = new Set([
  // Its worker came up: admitted by a health check first, when there is one.
  "starting → admitting",
  "starting → ready",
  "starting → gone",
  // Passed, lost, or asked to leave before it passed.
  "admitting → ready",
  "admitting → restarting",
  "admitting → retiring",
  "admitting → gone",
  "ready → restarting",
  "ready → retiring",
  "ready → gone",
  // Back up (waiting for its check again if it had not passed), or given up.
  "restarting → admitting",
  "restarting → ready",
  "restarting → retiring",
  "restarting → gone",
  // A leaving node only leaves; a gone one goes nowhere.
  "retiring → gone",
]);

const legalFrom = (from: NodeState) =>
  STATES.filter((to) => LEGAL.has(`${from} → ${to}`));

function node(state: NodeState, session = true): PoolNode {
  return {
    index: 3,
    state,
    running: new Set(),
    pinned: [],
    session: session
      ? { lostReason: undefined, codeUrl: "file:///code/" }
      : undefined,
  } as unknown as PoolNode;
}

for (const from of STATES) {
  Deno.test(
    `${/^[aeiou]/.test(from) ? "an" : "a"} ${from} node goes ${
      legalFrom(from).length
        ? `only to ${legalFrom(from).join(", ")}`
        : "nowhere"
    }`,
    () => {
      for (const to of STATES) {
        const n = node(from);
        if (LEGAL.has(`${from} → ${to}`)) {
          transition(n, to, "why");
          assert.equal(n.state, to);
        } else {
          assert.throws(
            () => transition(n, to),
            new RegExp(`Node 3 cannot go from ${from} to ${to}`),
            `${from} → ${to} must be refused`,
          );
          assert.equal(n.state, from, "a refused change leaves the state");
        }
      }
    },
  );
}

Deno.test("a node given up keeps why", () => {
  const n = node("ready");
  assert.equal(goneReason(n), undefined);
  transition(n, "gone", "its worker could not be restarted");
  assert.equal(goneReason(n), "its worker could not be restarted");
});

Deno.test("the predicates read the state: who takes work, who is held, who is gone", () => {
  const columns = "ready takesWork gated staying admitted leaving gone";
  // One row per state, in the order of the columns.
  const rows: [NodeState, string][] = [
    ["starting", "-  -  x  x  -  -  -"],
    ["admitting", "x  -  x  x  -  -  -"],
    ["ready", "x  x  -  x  x  -  -"],
    ["restarting", "-  -  -  x  x  -  -"],
    ["retiring", "x  -  -  -  -  x  -"],
    ["gone", "-  -  -  -  -  -  x"],
  ];
  for (const [state, marks] of rows) {
    const n = node(state);
    const got = [
      isReady(n),
      takesWork(n),
      isGated(n),
      isStaying(n),
      isAdmitted(n),
      isLeaving(n),
      isGone(n),
    ];
    assert.deepEqual(
      got,
      marks.split(/\s+/).map((m) => m === "x"),
      `${state}: ${columns}`,
    );
  }
});

Deno.test("a ready node whose worker is lost or has no code yet is not ready", () => {
  const lost = node("ready");
  (lost.session as { lostReason?: string }).lostReason = "exited";
  assert.equal(isReady(lost), false);
  assert.equal(takesWork(lost), false);
  const noCode = node("ready");
  (noCode.session as { codeUrl: string }).codeUrl = "";
  assert.equal(isReady(noCode), false);
  assert.equal(isReady(node("ready", false)), false);
  assert.equal(isReady(undefined), false);
});

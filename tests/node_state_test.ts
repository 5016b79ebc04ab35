// The node lifecycle: one state, and the only changes that can happen.
import assert from "node:assert/strict";
import {
  isAdmitted,
  isAdmitting,
  isGone,
  isReady,
  isRetiring,
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
  transition(n, "gone", "its worker could not be restarted");
  assert.equal(n.reason, "its worker could not be restarted");
});

Deno.test("the predicates read the state: who takes work, who is held, who is gone", () => {
  const rows: [NodeState, {
    ready: boolean;
    takesWork: boolean;
    admitting: boolean;
    staying: boolean;
    admitted: boolean;
    retiring: boolean;
    gone: boolean;
  }][] = [
    ["starting", {
      ready: false,
      takesWork: false,
      admitting: false,
      staying: true,
      admitted: false,
      retiring: false,
      gone: false,
    }],
    ["admitting", {
      ready: true,
      takesWork: false,
      admitting: true,
      staying: true,
      admitted: false,
      retiring: false,
      gone: false,
    }],
    ["ready", {
      ready: true,
      takesWork: true,
      admitting: false,
      staying: true,
      admitted: true,
      retiring: false,
      gone: false,
    }],
    ["restarting", {
      ready: false,
      takesWork: false,
      admitting: false,
      staying: true,
      admitted: true,
      retiring: false,
      gone: false,
    }],
    ["retiring", {
      ready: true,
      takesWork: false,
      admitting: false,
      staying: false,
      admitted: false,
      retiring: true,
      gone: false,
    }],
    ["gone", {
      ready: false,
      takesWork: false,
      admitting: false,
      staying: false,
      admitted: false,
      retiring: false,
      gone: true,
    }],
  ];
  for (const [state, want] of rows) {
    const n = node(state);
    assert.deepEqual(
      {
        ready: isReady(n),
        takesWork: takesWork(n),
        admitting: isAdmitting(n),
        staying: isStaying(n),
        admitted: isAdmitted(n),
        retiring: isRetiring(n),
        gone: isGone(n),
      },
      want,
      state,
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

/**
 * Which markets a launch tries, in order: the allocation × what the offer
 * supports (a market it states a price for) × the pool's price cap. One
 * table for every cloud; a row that differs for one cloud says so and why.
 */
import assert from "node:assert/strict";
import {
  type Market,
  marketsFor,
  minimumSize,
  noOffersError,
  rankPriced,
} from "../providers/_offers.ts";
import * as sky from "../mod.ts";
import type { ClusterSpec } from "../src/provider.ts";

type Allocation = ClusterSpec["allocation"];

interface Row {
  allocation: Allocation;
  spot?: number;
  onDemand?: number;
  cap?: number;
  /** Markets tried, in order. */
  tried: Market[];
  /** Where AWS differs: every EC2 type is sold on demand, priced or not. */
  aws?: Market[];
}

const S = "spot", D = "on-demand";

const TABLE: Row[] = [
  // Both markets offered, spot cheaper.
  { allocation: "spot", spot: 1, onDemand: 3, tried: [S] },
  { allocation: "on-demand", spot: 1, onDemand: 3, tried: [D] },
  { allocation: "spot-if-available", spot: 1, onDemand: 3, tried: [S, D] },
  { allocation: "cheapest", spot: 1, onDemand: 3, tried: [S, D] },
  // Both offered, on-demand cheaper (it happens on marketplaces).
  { allocation: "spot-if-available", spot: 3, onDemand: 1, tried: [S, D] },
  { allocation: "cheapest", spot: 3, onDemand: 1, tried: [D, S] },
  // A tie goes to spot.
  { allocation: "cheapest", spot: 2, onDemand: 2, tried: [S, D] },
  // Only on-demand offered.
  { allocation: "spot", onDemand: 3, tried: [] },
  { allocation: "on-demand", onDemand: 3, tried: [D] },
  { allocation: "spot-if-available", onDemand: 3, tried: [D] },
  { allocation: "cheapest", onDemand: 3, tried: [D] },
  // Only spot offered (or no on-demand price known).
  { allocation: "spot", spot: 1, tried: [S] },
  { allocation: "on-demand", spot: 1, tried: [], aws: [D] },
  { allocation: "spot-if-available", spot: 1, tried: [S], aws: [S, D] },
  { allocation: "cheapest", spot: 1, tried: [S], aws: [S, D] },
  // No price known at all.
  { allocation: "spot", tried: [] },
  { allocation: "on-demand", tried: [], aws: [D] },
  { allocation: "spot-if-available", tried: [], aws: [D] },
  { allocation: "cheapest", tried: [], aws: [D] },
  // The cap drops a market above it, and one whose price is unknown.
  { allocation: "spot-if-available", spot: 1, onDemand: 3, cap: 2, tried: [S] },
  { allocation: "cheapest", spot: 3, onDemand: 1, cap: 2, tried: [D] },
  { allocation: "spot", spot: 3, onDemand: 1, cap: 2, tried: [] },
  { allocation: "on-demand", spot: 1, onDemand: 3, cap: 2, tried: [] },
  {
    allocation: "spot-if-available",
    spot: 1,
    onDemand: 2,
    cap: 2,
    tried: [S, D],
  },
  { allocation: "cheapest", spot: 1, cap: 2, tried: [S] },
  { allocation: "on-demand", cap: 2, tried: [] },
];

function label(row: Row): string {
  const offered = [
    row.spot === undefined ? "" : `spot $${row.spot}`,
    row.onDemand === undefined ? "" : `on-demand $${row.onDemand}`,
  ].filter(Boolean).join(", ") || "no price";
  return `${row.allocation}, ${offered}${
    row.cap === undefined ? "" : `, cap $${row.cap}`
  }`;
}

function offer(row: Row) {
  return {
    ...(row.spot === undefined ? {} : { spotPrice: row.spot }),
    ...(row.onDemand === undefined ? {} : { onDemandPrice: row.onDemand }),
  };
}

Deno.test("marketsFor tries the allocation's markets the offer supports, cheapest first where asked, within the cap", () => {
  for (const row of TABLE) {
    assert.deepEqual(
      marketsFor(offer(row), row.allocation, row.cap),
      row.tried,
      label(row),
    );
  }
});

Deno.test("marketsFor on AWS also tries on-demand when the price table lacks the type, but never under a cap", () => {
  for (const row of TABLE) {
    assert.deepEqual(
      marketsFor(offer(row), row.allocation, row.cap, {
        onDemandUnpriced: true,
      }),
      row.aws ?? row.tried,
      label(row),
    );
  }
});

const spec = (more: Partial<ClusterSpec> = {}): ClusterSpec => ({
  clusterId: "sky-1",
  nodes: 1,
  allocation: "spot",
  ...more,
});

Deno.test("a pool that names no size gets at least 2 vCPUs and 4 GB; naming one size or an accelerator drops the other bound", () => {
  assert.deepEqual(minimumSize(spec()), { vcpus: 2, memoryGb: 4 });
  assert.deepEqual(minimumSize(spec({ vcpus: 8 })), { vcpus: 8, memoryGb: 0 });
  assert.deepEqual(minimumSize(spec({ memoryGb: 64 })), {
    vcpus: 0,
    memoryGb: 64,
  });
  assert.deepEqual(
    minimumSize(spec({ accelerator: sky.accelerators.T4() })),
    { vcpus: 0, memoryGb: 0 },
  );
});

Deno.test("offers without a price for the allocation are left out; none left → the cloud's NoOffersError saying so", () => {
  const offer = (instanceType: string, spotPrice?: number) => ({
    provider: "x",
    instanceType,
    spotPrice,
    onDemandPrice: 1,
  });
  const noOffers = noOffersError(spec(), {
    cloud: "X in eu",
    otherwise: "a CPU machine",
    alternatives: "another region",
  });
  assert.deepEqual(
    rankPriced([offer("a"), offer("b", 0.5), offer("c", 0.2)], spec(), noOffers)
      .map((o) => o.instanceType),
    ["c", "b"],
  );
  assert.throws(
    () => rankPriced([offer("a"), offer("b")], spec(), noOffers),
    (error: Error) =>
      error instanceof sky.NoOffersError &&
      error.message ===
        "No instances available on X in eu for a CPU machine with allocation 'spot': " +
          "no a/b is offered as spot. Try another region, " +
          "or allocation 'spot-if-available' to fall back to on-demand.",
  );
});

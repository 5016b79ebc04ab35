/**
 * Ranks and the cluster view: which rank a new node takes, which ranks are
 * held (by a node that is ready, starting or leaving), and the view tasks
 * read in `instanceInfo()` (`totalNodes`, `peers`, `headAddr`), sent to
 * every worker whenever it changes.
 *
 * @module
 */
import type { InstanceInfo } from "../instance.ts";
import {
  goneReason,
  isGone,
  isLeaving,
  isReady,
  type PoolNode,
} from "./node_state.ts";

/** The part of `instanceInfo()` that describes the whole cluster. */
export type View = Pick<InstanceInfo, "totalNodes" | "peers" | "headAddr">;

/** What the cluster view reads of its pool. */
export interface ClusterHooks {
  /** The nodes by rank; a rank is free where it holds nothing or a node given up. */
  nodes(): readonly (PoolNode | undefined)[];
  /** Whether the pool is closed or closing (nothing is announced then). */
  closed(): boolean;
}

/**
 * The ranks of a pool's nodes and the view of the cluster its tasks get.
 *
 * @example
 * ```ts
 * import { ClusterView } from "./cluster.ts";
 *
 * const cluster = new ClusterView({ nodes: () => [], closed: () => false });
 * cluster.joining.set(0, "10.0.0.1");
 * console.log(cluster.freeRank()); // 1
 * console.log(cluster.view()); // { totalNodes: 1, peers: ["10.0.0.1"], headAddr: "10.0.0.1" }
 * ```
 */
export class ClusterView {
  /** Ranks of nodes still starting, with their private address (`""` until known). */
  readonly joining = new Map<number, string>();
  #hooks: ClusterHooks;

  /** @param hooks The pool's nodes and whether it is closed. */
  constructor(hooks: ClusterHooks) {
    this.#hooks = hooks;
  }

  /** The lowest rank no node holds; `also` counts as free. */
  freeRank(also?: number): number {
    const nodes = this.#hooks.nodes();
    for (let rank = 0;; rank++) {
      const held = this.joining.has(rank) ||
        nodes[rank] !== undefined && !isGone(nodes[rank]) && rank !== also;
      if (!held) return rank;
    }
  }

  /** Whether a rank is held: by a node starting, or by one not given up. */
  holds(rank: number): boolean {
    const node = this.#hooks.nodes()[rank];
    return this.joining.has(rank) || node !== undefined && !isGone(node);
  }

  /**
   * The cluster as tasks see it: one entry of `peers` per rank up to the
   * highest rank held (by a ready, starting or leaving node), `""` for a
   * free rank; `totalNodes` is its length.
   */
  view(): View {
    const nodes = this.#hooks.nodes();
    const peers: string[] = [];
    const ranks = Math.max(nodes.length - 1, ...this.joining.keys());
    for (let rank = 0; rank <= ranks; rank++) {
      const node = nodes[rank];
      peers[rank] = this.joining.get(rank) ??
        (node && !isGone(node) ? node.instance.privateAddress ?? "" : "");
    }
    while (
      peers.length > 0 && peers.at(-1) === "" && !this.holds(peers.length - 1)
    ) {
      peers.pop();
    }
    // Machines with no private network between them (their provider gives
    // no private address) run standalone: no peers to reach.
    const standalone = peers.every((p) => p === "");
    return {
      totalNodes: peers.length,
      peers: standalone ? [] : peers,
      headAddr: peers[0] ?? "",
    };
  }

  /** Sends the current view to every ready worker whose view is older. */
  announce(): void {
    if (this.#hooks.closed()) return;
    const view = this.view();
    const text = JSON.stringify(view);
    for (const node of this.#hooks.nodes()) {
      if (!isReady(node) || node.view === text) continue;
      node.view = text;
      node.session.updateCluster(view);
    }
  }

  /**
   * Why a task cannot be pinned to rank `rank`: no node there, or one lost
   * or leaving; `undefined` when it can.
   */
  pinError(rank: number): RangeError | undefined {
    const nodes = this.#hooks.nodes();
    const node = nodes[rank];
    if (
      Number.isInteger(rank) && node && !isGone(node) && !isLeaving(node)
    ) return undefined;
    const ranks = nodes.flatMap((n, i) =>
      n && !isGone(n) && !isLeaving(n) ? [i] : []
    );
    return new RangeError(
      `Cannot run on node ${rank}: the pool's nodes are ${
        ranks.length === 0
          ? "none at the moment"
          : ranks.at(-1) === ranks.length - 1
          ? `0 to ${ranks.length - 1}`
          : ranks.join(", ")
      }${
        isGone(node)
          ? ` and node ${rank} was lost (${goneReason(node)})`
          : node && isLeaving(node)
          ? ` and node ${rank} is leaving the pool`
          : ""
      }`,
    );
  }
}

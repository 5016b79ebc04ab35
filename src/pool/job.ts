/**
 * A job: one task of the pool, from the moment it is submitted until it
 * settles — what it runs, where it may run, its timer, its streams and how
 * many times it was sent again after its node was lost.
 *
 * @module
 */
import type { SandboxSpec } from "../wire/messages.ts";
import type { StreamArg, StreamedCall } from "./remote_stream.ts";
import type { PoolNode } from "./node_state.ts";

/** One task of the pool, queued, running or settled. */
export interface Job {
  id: number;
  name: string;
  module: string;
  key: string;
  args: Uint8Array;
  /** Where it runs on the worker (sent once per node, before its first call). */
  spec: SandboxSpec;
  timeout: number | undefined;
  /** The node it must run on, for broadcasts. */
  pin?: number;
  node?: PoolNode;
  sentAt: number;
  /** When it last started waiting for a node, in ms of `performance.now()`. */
  queuedAt: number;
  /** Cancels its timeout's timer. */
  timer?: () => void;
  settled: boolean;
  /** How many times it was sent again after its node was lost. */
  attempts: number;
  /** Whether it is a health check (never sent again, never counted as work). */
  probe?: boolean;
  /** Its streamed arguments, if any. */
  streams?: StreamArg[];
  /** Its streams on the node it was sent to. */
  call?: StreamedCall;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

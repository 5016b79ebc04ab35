/**
 * What undoes the reply of a blocking call whose caller stopped waiting
 * while the reply was on its way: a value a queue's `get` took goes back in
 * the queue (at its end), a lock `acquire` was granted is released. So a
 * caller that gives up never loses a value nor keeps a lock.
 *
 * @module
 */
import type { CollectionCall } from "./backend.ts";

/**
 * The call that gives back what `reply` took, if it took anything.
 *
 * @param call The blocking call's kind, operation and collection.
 * @param reply Its decoded reply.
 * @returns The call to make, or `undefined`.
 *
 * @example
 * ```ts
 * import { giveBack } from "./_give_back.ts";
 *
 * const call = { kind: "lock", op: "acquire", name: "gpu" };
 * console.log(giveBack(call, { token: "t1" })); // { kind: "lock", name: "gpu", op: "release", token: "t1" }
 * ```
 */
export function giveBack(
  call: { kind: string; op: string; name: string },
  reply: unknown,
): CollectionCall | undefined {
  const r = reply as { value?: unknown; token?: unknown } | undefined;
  if (
    call.kind === "queue" && call.op === "get" && r?.value instanceof Uint8Array
  ) {
    return { kind: "queue", name: call.name, op: "put", value: r.value };
  }
  if (
    call.kind === "lock" && call.op === "acquire" &&
    typeof r?.token === "string"
  ) {
    return { kind: "lock", name: call.name, op: "release", token: r.token };
  }
  return undefined;
}

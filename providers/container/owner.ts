/**
 * Owners: which client process made a container or network (a label of
 * `host/pid/start`), and whether that process still runs, so that a
 * cleanup removes only what crashed clients left.
 *
 * @module
 */

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** The start time of a process in clock ticks since boot (Linux), to tell a reused pid. */
function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

let ownerLabel: string | undefined;

/** This process as an owner: `host/pid/start`. */
export function owner(): string {
  ownerLabel ??= `${hostname()}/${Deno.pid}/${startTime(Deno.pid) ?? "0"}`;
  return ownerLabel;
}

/** Whether the process that made a resource is gone; `false` when it cannot tell. */
export function ownerGone(label: string | undefined): boolean {
  if (!label) return false;
  const [host, pid, start] = label.split("/");
  if (host !== hostname() || Deno.build.os !== "linux") return false;
  if (label === owner()) return false;
  const now = startTime(Number(pid));
  return now === undefined || now !== start;
}

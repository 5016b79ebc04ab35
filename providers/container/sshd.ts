/**
 * Waiting for a node container's sshd: polled until it sends its banner
 * (sshd speaks first), or the time is up.
 *
 * @module
 */
import { pollUntil } from "../_poll.ts";

/** Whether sshd at the address answers within `timeoutMs`, polled. */
export async function accepts(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  const up = await pollUntil(
    async () => await banner(host, port, 2_000) || undefined,
    { timeout: timeoutMs, minDelay: 50, maxDelay: 50 },
  );
  return up === true;
}

/** Whether a server at the address sends a first byte (sshd speaks first) within `ms`. */
async function banner(
  host: string,
  port: number,
  ms: number,
): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = (async () => {
    conn = await Deno.connect({ hostname: host, port });
    return (await conn.read(new Uint8Array(4))) !== null;
  })().catch(() => false);
  const answered = await Promise.race([
    attempt,
    new Promise<false>((r) => timer = setTimeout(() => r(false), ms)),
  ]);
  clearTimeout(timer);
  try {
    conn?.close();
  } catch {
    // Closed already.
  }
  // A connection that completes late is closed as well.
  if (!answered) attempt.then(() => conn?.close()).catch(() => {});
  return answered;
}

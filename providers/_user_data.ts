/**
 * The user data of the instances Skyward launches on AWS (and Verda): a
 * watchdog that terminates a machine whose client is gone; and that
 * watchdog's script, which Vast.ai's onstart script writes too. No SDK
 * here, so every provider can use it without loading AWS's.
 *
 * @module
 */

/**
 * The user data of every instance: a watchdog that shuts the machine down
 * (which terminates it) once no SSH client has been connected for `ttl`,
 * and after `maxLifetime` at the latest.
 *
 * @param options `ttl` and `maxLifetime`, in ms.
 * @returns A shell script, run by cloud-init at first boot.
 *
 * @example
 * ```ts
 * import { userData } from "./_user_data.ts";
 *
 * const script = userData({ ttl: 600_000, maxLifetime: 3_600_000 });
 * console.log(script.includes("skyward-ttl 600")); // true
 * ```
 */
export function userData(
  options: { ttl: number; maxLifetime?: number },
): string {
  const lines = [
    "#!/bin/sh",
    "# Skyward: this machine terminates itself when its client is gone.",
    ...idleWatchdog({
      ttl: options.ttl,
      path: "/usr/local/sbin/skyward-ttl",
      what: "Shuts down",
      step: "15",
      connected:
        "ss -Htn state established '( sport = :22 )' 2>/dev/null | grep -q .",
      onIdle: [
        '  if [ "$idle" -ge "$ttl" ]; then logger -t skyward "no client for ${ttl}s: shutting down"; shutdown -h now || poweroff -f; fi',
      ],
      start: (path, ttl) =>
        `if command -v systemd-run >/dev/null; then systemd-run --unit=skyward-ttl ${path} ${ttl}; ` +
        `else nohup ${path} ${ttl} >/dev/null 2>&1 & fi`,
    }),
  ];
  if (options.maxLifetime) {
    lines.push(
      `shutdown -h +${
        Math.max(1, Math.ceil(options.maxLifetime / 60_000))
      } "Skyward: maxLifetime reached"`,
    );
  }
  return lines.join("\n") + "\n";
}

/** What {@linkcode idleWatchdog} writes and starts. */
export interface IdleWatchdog {
  /** How long without an SSH client, in ms; 0 for no watchdog. */
  ttl: number;
  /** Where the script is written. */
  path: string;
  /** What it does, for its comment: "Shuts down", "Destroys the instance". */
  what: string;
  /** Seconds between looks, as shell text. */
  step: string;
  /** A shell test that succeeds while an SSH client is connected. */
  connected: string;
  /** The lines run after each look, with `$idle` and `$ttl` set. */
  onIdle: string[];
  /** The command that starts the script, given its path and the ttl in seconds. */
  start: (path: string, ttl: number) => string;
}

/**
 * The lines of a shell script that write and start a watchdog: a loop
 * that counts the seconds no SSH client has been connected and acts once
 * they reach the ttl.
 *
 * @param watchdog What it tests, does and how it starts.
 * @returns The lines, none when `ttl` is 0.
 *
 * @example
 * ```ts
 * import { idleWatchdog } from "./_user_data.ts";
 *
 * const lines = idleWatchdog({
 *   ttl: 60_000,
 *   path: "/usr/local/bin/skyward-ttl",
 *   what: "Stops",
 *   step: "15",
 *   connected: "false",
 *   onIdle: ['  if [ "$idle" -ge "$ttl" ]; then exit 0; fi'],
 *   start: (path, ttl) => `nohup ${path} ${ttl} &`,
 * });
 * console.log(lines.at(-1)); // "nohup /usr/local/bin/skyward-ttl 60 &"
 * ```
 */
export function idleWatchdog(watchdog: IdleWatchdog): string[] {
  const ttl = Math.ceil(watchdog.ttl / 1000);
  if (ttl <= 0) return [];
  return [
    `cat >${watchdog.path} <<'SKYWARD'`,
    "#!/bin/sh",
    `# ${watchdog.what} once no SSH client has been connected for $1 seconds.`,
    `ttl=$1; idle=0; step=${watchdog.step}`,
    "while sleep $step; do",
    `  if ${watchdog.connected}; then idle=0; else idle=$((idle + step)); fi`,
    ...watchdog.onIdle,
    "done",
    "SKYWARD",
    `chmod 755 ${watchdog.path}`,
    watchdog.start(watchdog.path, ttl),
  ];
}

/**
 * The user data of the instances Skyward launches on AWS (and Verda): a
 * watchdog that terminates a machine whose client is gone. No SDK here, so
 * other providers can use it without loading AWS's.
 *
 * @module
 */
import type { ResolvedAwsOptions } from "./aws/config.ts";

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
  options: Pick<ResolvedAwsOptions, "ttl" | "maxLifetime">,
): string {
  const ttl = Math.ceil(options.ttl / 1000);
  const lines = [
    "#!/bin/sh",
    "# Skyward: this machine terminates itself when its client is gone.",
  ];
  if (ttl > 0) {
    lines.push(
      "cat >/usr/local/sbin/skyward-ttl <<'SKYWARD'",
      "#!/bin/sh",
      "# Shuts down once no SSH client has been connected for $1 seconds.",
      "ttl=$1; idle=0; step=15",
      "while sleep $step; do",
      "  if ss -Htn state established '( sport = :22 )' 2>/dev/null | grep -q .; then idle=0; else idle=$((idle + step)); fi",
      '  if [ "$idle" -ge "$ttl" ]; then logger -t skyward "no client for ${ttl}s: shutting down"; shutdown -h now || poweroff -f; fi',
      "done",
      "SKYWARD",
      "chmod 755 /usr/local/sbin/skyward-ttl",
      `if command -v systemd-run >/dev/null; then systemd-run --unit=skyward-ttl /usr/local/sbin/skyward-ttl ${ttl}; ` +
        `else nohup /usr/local/sbin/skyward-ttl ${ttl} >/dev/null 2>&1 & fi`,
    );
  }
  if (options.maxLifetime) {
    lines.push(
      `shutdown -h +${
        Math.max(1, Math.ceil(options.maxLifetime / 60_000))
      } "Skyward: maxLifetime reached"`,
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * The container's PID 1, as a shell script: what runs before and around
 * sshd in every node container.
 *
 * @module
 */

/** How many versions of the code (and of the library) a cache volume keeps. */
const CODE_KEEP = 3;

/**
 * The container's PID 1: makes the user, keeps the cache volume's newest
 * versions, starts sshd and exits at the TTL or on a power-off request.
 *
 * @param ttlMs The container's lifetime, in ms (0: no limit).
 * @param user The user the nodes log in as.
 * @returns The shell script.
 */
export function entrypoint(ttlMs: number, user: string): string {
  const ttl = Math.ceil(ttlMs / 1000);
  return String.raw`set -e
U=${user}
if ! id "$U" >/dev/null 2>&1; then useradd -m -s /bin/sh "$U"; usermod -p '*' "$U"; fi
C=/home/$U/.cache/skyward
if [ -d "$C" ]; then
  # The node's cache volume, made by the runtime as root: the user's own.
  chown "$U:" "/home/$U" "/home/$U/.cache" "$C"
  [ "$(stat -c %u "$C/deno" 2>/dev/null || id -u "$U")" = "$(id -u "$U")" ] || chown -R "$U:" "$C"
  if [ -n "$SKYWARD_PRUNE" ]; then
    # No container used the volume when the pool started: keep the most
    # recent versions of the code and the library, and of Deno. Never fatal.
    [ -e "$C/.lock" ] || { : >"$C/.lock" && chown "$U:" "$C/.lock"; } || :
    (
      set +e
      prune() {
        [ -d "$C/$1" ] || return 0
        ls -1t "$C/$1" | tail -n +$(($2 + 1)) | while IFS= read -r _v; do
          case $_v in *[!0-9A-Za-z.-]*|.*|'') continue ;; esac
          rm -rf "$C/$1/$_v"
        done
      }
      # Not while a bootstrap (of a pool started meanwhile) holds the volume.
      exec 8>"$C/.lock" || exit 0
      flock -w 10 8 || exit 0
      prune code ${CODE_KEEP}
      prune lib ${CODE_KEEP}
      prune deno 2
    ) || :
  fi
fi
unset SKYWARD_PRUNE
mkdir -p /run/sshd /etc/skyward /run/skyward
chmod 1777 /run/skyward
umask 077
printf '%s\n' "$SKYWARD_HOST_KEY" >/etc/skyward/host_key
umask 022
printf '%s\n' "$SKYWARD_AUTHORIZED_KEY" >/etc/skyward/authorized_keys
unset SKYWARD_HOST_KEY SKYWARD_AUTHORIZED_KEY
cat >/etc/skyward/sshd_config <<EOF
Port 22
HostKey /etc/skyward/host_key
AuthorizedKeysFile /etc/skyward/authorized_keys
AllowUsers $U
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxSessions 64
MaxStartups 64:30:128
PidFile /run/sshd.pid
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -D -e -f /etc/skyward/sshd_config &
trap 'exit 0' TERM INT
end=$(($(date +%s) + ${ttl}))
while :; do
  if [ -e /run/skyward/poweroff ]; then
    echo "skyward: the worker powered the container off" >&2
    exit 0
  fi
  if [ ${ttl} -gt 0 ] && [ "$(date +%s)" -ge "$end" ]; then
    echo "skyward: the container's ttl of ${ttl} s is over: stopping" >&2
    exit 0
  fi
  sleep 1 &
  wait $! || :
done
`;
}

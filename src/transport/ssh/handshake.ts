/**
 * One attempt at an SSH connection: the TCP connection (Nagle off), the
 * handshake with the host key checked against the policy in force (pinned,
 * given, `known_hosts`, a verifier, or trust on first use), and the login.
 * Retrying and reconnecting are the connection's (`connection.ts`).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { connect as netConnect, type Socket } from "node:net";
// @ts-types="npm:@types/ssh2@1.15.6"
import { Client, type ConnectConfig } from "npm:ssh2@1.17.0";
import { logger } from "../../log.ts";
import { batchWrites } from "./batching.ts";
import {
  type HostKey,
  hostKeyAlgorithms,
  hostKeyFromData,
  lookupKnownHosts,
  parsePublicKey,
  sameKey,
} from "../host_keys.ts";
import {
  HostKeyMismatchError,
  SshAuthenticationError,
  SshConnectionError,
} from "./errors.ts";
import {
  formatAddress,
  type HostKeyVerifier,
  type ResolvedOptions,
} from "./options.ts";

const log = logger("ssh");

/** What an attempt must accept as the host key. */
type HostKeyPolicy =
  | { kind: "pinned"; key: HostKey }
  | { kind: "keys"; keys: HostKey[]; revoked: HostKey[]; source: string }
  | { kind: "fingerprint"; fingerprint: string }
  | { kind: "verifier"; verify: HostKeyVerifier }
  | { kind: "first-use"; revoked: HostKey[] };

/** The policy for a connection's next attempt: the pinned key once there is one. */
async function hostKeyPolicy(
  options: ResolvedOptions,
  pinned: HostKey | null,
): Promise<HostKeyPolicy> {
  if (pinned) return { kind: "pinned", key: pinned };
  const given = options.hostKey;
  if (typeof given === "function") return { kind: "verifier", verify: given };
  if (typeof given === "string") {
    if (given.startsWith("SHA256:")) {
      return { kind: "fingerprint", fingerprint: given.replace(/=+$/, "") };
    }
    return {
      kind: "keys",
      keys: [parsePublicKey(given)],
      revoked: [],
      source: "the given key",
    };
  }
  const path = options.knownHostsPath;
  if (path) {
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const known = lookupKnownHosts(text, options.host, options.port);
    if (known.keys.length) return { kind: "keys", ...known, source: path };
    return { kind: "first-use", revoked: known.revoked };
  }
  return { kind: "first-use", revoked: [] };
}

/**
 * Makes one attempt at a connection: connects, checks the host key, logs in.
 *
 * @param options The connection's options.
 * @param pinned The key pinned at first contact, which must be presented again.
 * @param signal Ends the attempt (a non-retriable failure).
 * @param adopt Called, as the login succeeds and before anything else can
 *   happen on it, with the client, its socket and the key the host presented.
 * @returns The logged-in client.
 * @throws {SshConnectionError} Saying whether trying again may help; a
 *   {@linkcode HostKeyMismatchError} or {@linkcode SshAuthenticationError} never.
 *
 * @example
 * ```ts ignore
 * import { handshake } from "./handshake.ts";
 * import { resolveOptions } from "./options.ts";
 *
 * const options = resolveOptions({ host: "10.213.0.10", user: "skyrig0", privateKey });
 * const client = await handshake(options, null, AbortSignal.timeout(20_000), () => {});
 * ```
 */
export async function handshake(
  options: ResolvedOptions,
  pinned: HostKey | null,
  signal: AbortSignal,
  adopt: (client: Client, socket: Socket, presented?: HostKey) => void,
): Promise<Client> {
  const address = formatAddress(options.host, options.port);
  const label = `${options.user}@${address}`;
  const policy = await hostKeyPolicy(options, pinned);
  let presented: HostKey | undefined;
  let refusal: HostKeyMismatchError | undefined;

  const verifyHost = (data: Uint8Array, verify: (ok: boolean) => void) => {
    let key: HostKey;
    try {
      key = hostKeyFromData(new Uint8Array(data));
    } catch {
      refusal = new HostKeyMismatchError(address, "a valid key", "garbage");
      return verify(false);
    }
    presented = key;
    const refuse = (expected: string, reason?: string) => {
      refusal = new HostKeyMismatchError(
        address,
        expected,
        key.fingerprint,
        reason,
      );
      verify(false);
    };
    switch (policy.kind) {
      case "pinned":
        return sameKey(key, policy.key)
          ? verify(true)
          : refuse(policy.key.fingerprint);
      case "fingerprint":
        return key.fingerprint === policy.fingerprint
          ? verify(true)
          : refuse(policy.fingerprint);
      case "keys":
        if (policy.revoked.some((k) => sameKey(k, key))) {
          return refuse(
            "",
            `its key ${key.fingerprint} is marked @revoked in ${policy.source}`,
          );
        }
        return policy.keys.some((k) => sameKey(k, key))
          ? verify(true)
          : refuse(`${
            policy.keys.map((k) => k.fingerprint).join(" or ")
          } (from ${policy.source})`);
      case "first-use":
        if (policy.revoked.some((k) => sameKey(k, key))) {
          return refuse("", `its key ${key.fingerprint} is marked @revoked`);
        }
        if (!options.acceptUnknownHostKey) {
          return refuse(
            "",
            `the host is unknown (key ${key.fingerprint} is neither given nor in ${
              options.knownHostsPath ?? "a known_hosts file"
            }) and unknown hosts are not accepted`,
          );
        }
        return verify(true);
      case "verifier":
        Promise.resolve()
          .then(() => policy.verify(key))
          .then(
            (ok) => ok ? verify(true) : refuse("a key the verifier accepts"),
            () =>
              refuse(
                "a key the verifier accepts",
                "the host key verifier threw",
              ),
          );
        return;
    }
  };

  const algorithms = policy.kind === "pinned"
    ? hostKeyAlgorithms([policy.key])
    : policy.kind === "keys"
    ? hostKeyAlgorithms(policy.keys)
    : [];

  return await new Promise<Client>((resolve, reject) => {
    let settled = false;
    const socket = netConnect({ host: options.host, port: options.port });
    const client = new Client();
    const fail = (error: SshConnectionError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => {
      fail(
        new SshConnectionError(
          `Timed out after ${options.connectTimeout} ms connecting to ${address}`,
          { retriable: true },
        ),
      );
    }, options.connectTimeout);
    const onAbort = () =>
      fail(
        new SshConnectionError(`Connecting to ${address} was aborted`, {
          retriable: false,
        }),
      );
    signal.addEventListener("abort", onAbort, { once: true });

    socket.on("error", (error: Error) => {
      fail(
        new SshConnectionError(
          `Cannot connect to ${address}: ${error.message}`,
          {
            cause: error,
            retriable: true,
          },
        ),
      );
    });
    socket.once("connect", () => {
      // Without this every small round trip waits for Nagle (~44 ms).
      socket.setNoDelay(true);
      // Before ssh2's own listener: what it writes while reading is gathered.
      batchWrites(socket);
      const config: ConnectConfig = {
        sock: socket,
        username: options.user,
        privateKey: options.privateKey,
        passphrase: options.passphrase,
        // Straight to the key: by default ssh2 first tries 'none', a round
        // trip that only learns the methods the server allows
        // (makeSimpleAuthHandler in ssh2's lib/client.js, v1.17.0).
        authHandler: ["publickey"],
        readyTimeout: options.connectTimeout,
        keepaliveInterval: options.keepaliveInterval,
        keepaliveCountMax: options.keepaliveCountMax,
        hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) =>
          verifyHost(key, verify)) as ConnectConfig["hostVerifier"],
      };
      config.algorithms = {
        // ssh2 prefers AES-GCM, but without its native binding (never built
        // under Deno) every cipher runs through node:crypto, one
        // createCipheriv per packet (ssh2's lib/protocol/crypto.js, v1.17.0),
        // and this client's CPU per 128 MB sent was ~0.45-0.55 s with
        // ChaCha20-Poly1305 (Poly1305 in ssh2's WebAssembly), ~1.05 s with
        // aes128-gcm and ~0.6-0.9 s with aes128-ctr. On one thread that
        // is the transfer rate: ChaCha20 first where the server has it.
        cipher: {
          remove: "chacha20-poly1305@openssh.com",
          prepend: /^chacha20-poly1305@openssh\.com$/,
        } as never,
      };
      if (algorithms.length) {
        config.algorithms.serverHostKey = algorithms as never;
      }
      try {
        client.connect(config);
      } catch (error) {
        // A private key that does not parse: no retry helps.
        fail(
          new SshConnectionError(
            `Cannot connect to ${label}: ${(error as Error).message}`,
            { retriable: false },
          ),
        );
      }
    });
    client.on("error", (error: Error & { level?: string }) => {
      if (settled) return;
      if (refusal) return fail(refusal);
      if (error.level === "client-authentication") {
        return fail(new SshAuthenticationError(label, { cause: error }));
      }
      const retriable = error.level === "client-socket" ||
        error.level === "client-timeout" ||
        error.level === "protocol" ||
        /ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|lost/i
          .test(
            `${(error as { code?: string }).code ?? ""} ${error.message}`,
          );
      fail(
        new SshConnectionError(
          `Cannot connect to ${address}: ${error.message}`,
          {
            cause: error,
            retriable,
          },
        ),
      );
    });
    client.on("close", () => {
      fail(
        refusal ??
          new SshConnectionError(
            `Connection to ${address} closed during the handshake`,
            {
              retriable: true,
            },
          ),
      );
    });
    client.once("handshake", (negotiated: { cs: { cipher: string } }) => {
      log.debug("Handshake with {address}: cipher {cipher}", {
        address,
        cipher: negotiated.cs.cipher,
      });
    });
    client.once("ready", () => {
      if (settled) {
        client.end();
        return;
      }
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      client.removeAllListeners("error").removeAllListeners("close");
      adopt(client, socket, presented);
      resolve(client);
    });
  });
}

/**
 * `SshHost`: a {@linkcode Host} reached over one SSH connection.
 *
 * @module
 */
import { shellQuote } from "../../_shell.ts";
import type { SshConnection } from "./connection.ts";
import { type Channel, type Host, stagingDir, type TreeFile } from "../host.ts";

/** A machine reached over SSH: commands are exec channels, files go by SFTP. */
export class SshHost implements Host {
  /** The SSH connection (one per node). */
  readonly connection: SshConnection;

  /** @param connection An open connection to the machine. */
  constructor(connection: SshConnection) {
    this.connection = connection;
  }

  /** `user@host:port`. */
  get label(): string {
    return this.connection.label;
  }

  async exec(
    argv: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ): Promise<Channel> {
    const command = (options.cwd ? `cd ${shellQuote([options.cwd])} && ` : "") +
      `exec ${shellQuote(argv)}`;
    const process = await this.connection.exec(command, { env: options.env });
    return {
      readable: process.readable,
      writable: process.writable,
      stderr: process.stderr,
      exited: process.exited.catch((error) => ({
        code: null,
        signal: `connection lost (${
          error instanceof Error ? error.message : String(error)
        })`,
      })),
      kill: () => process.kill(),
      unref: () => this.connection.unref(),
    };
  }

  async writeTree(dir: string, files: TreeFile[]): Promise<void> {
    const temp = await stagingDir(this, dir);
    if (!temp) return;
    await this.connection.upload(files, temp);
    const parent = dir.slice(0, dir.lastIndexOf("/")) || "/";
    const moved = await this.connection.run(
      `mkdir -p ${shellQuote([parent])} && mv -T ${shellQuote([temp])} ${
        shellQuote([dir])
      } 2>/dev/null || { rm -rf ${shellQuote([temp])}; test -d ${
        shellQuote([dir])
      }; }`,
    );
    if (moved.code !== 0) {
      throw new Error(
        `Cannot write ${dir} on ${this.label}: ${moved.stderr.trim()}`,
      );
    }
  }

  exists(path: string): Promise<boolean> {
    return this.connection.exists(path);
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}

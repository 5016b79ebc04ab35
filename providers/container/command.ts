// Running the host's tools (ip, debootstrap, docker, podman) from the
// container provider, with a PATH that also holds the system directories.

/**
 * The PATH commands run with. Read without failing where env access is not
 * granted: a task's sandbox evaluates this module (through mod.ts) with only
 * its compute's permissions.
 */
export const COMMAND_PATH = `${
  (() => {
    try {
      return Deno.env.get("PATH");
    } catch {
      return undefined;
    }
  })() ?? ""
}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

/** A finished command: its exit code (127 when it could not start) and output. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end with no input. Never throws. */
export async function runCommand(
  program: string,
  args: string[],
): Promise<CommandResult> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(program, {
      args,
      env: { PATH: COMMAND_PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    return { code: 127, stdout: "", stderr: String(error) };
  }
  const text = new TextDecoder();
  return {
    code: out.code,
    stdout: text.decode(out.stdout),
    stderr: text.decode(out.stderr),
  };
}

// `ftpsgate agent`: the inside-out agent's command line (issue 17; SPEC §1 style).
#pragma once

namespace ftpsgate::agent {

// The arguments from "agent" on (main passes argc - 1, argv + 1): `--config FILE [--check]`,
// `--version` or `--help`. Returns the process exit code (SPEC §1): 0 clean (or the check
// passed), 2 a usage or configuration error (each printed as FILE:LINE:COL: message),
// 1 a runtime failure.
int run_agent(int argc, char** argv);

}  // namespace ftpsgate::agent

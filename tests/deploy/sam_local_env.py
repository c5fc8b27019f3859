"""Print, as JSON, the environment `sam local` gives a function with an --env-vars file.

Run with .venv-sam: the SAM CLI's own code resolves the template's variables (intrinsics it
cannot resolve become empty, as in `sam local`) and applies the file's overrides, which only
reach variables the template declares. No container, no AWS call.

Usage: sam_local_env.py TEMPLATE ENV_VARS_FILE FUNCTION
"""

from __future__ import annotations

import json
import sys

from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.lambdafn.env_vars import EnvironmentVariables


def main(template: str, env_vars_file: str, logical_id: str) -> None:
    stacks, _ = SamLocalStackProvider.get_stacks(template)
    function = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True).get(logical_id)
    assert function is not None, logical_id
    with open(env_vars_file, encoding="utf-8") as file:
        values = json.load(file)
    # LocalLambdaRunner._make_env_vars: "Parameters" for every function, then its own section.
    overrides = {**values.get("Parameters", {}), **values.get(logical_id, {})}
    environment = EnvironmentVariables(
        function.name,
        function.memory,
        function.timeout,
        function.handler,
        function.logging_config,
        variables=(function.environment or {}).get("Variables"),
        shell_env_values={},
        override_values=overrides,
        aws_creds={"region": "us-east-1", "key": "local", "secret": "local"},
    )
    json.dump(
        {
            "declared": sorted((function.environment or {}).get("Variables", {})),
            "resolved": environment.resolve(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])

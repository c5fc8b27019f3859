"""Print, as JSON, the "has no authentication" questions `sam deploy --guided` would ask.

Run with .venv-sam: it calls the SAM CLI's own check (samcli.commands.deploy.auth_utils), on the
template as the guided deploy loads it, with the given parameter overrides. No AWS call.

Usage: guided_prompts.py TEMPLATE [Name=Value ...]
"""

from __future__ import annotations

import json
import sys

from samcli.commands.deploy.auth_utils import auth_per_resource
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider


def main(argv: list[str]) -> None:
    overrides = dict(argument.split("=", 1) for argument in argv[2:])
    stacks, _ = SamLocalStackProvider.get_stacks(argv[1], parameter_overrides=overrides)
    questions = [
        f"{resource} has no authentication. Is this okay?"
        for resource, authorized in auth_per_resource(stacks)
        if not authorized
    ]
    json.dump(questions, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)

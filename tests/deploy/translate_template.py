"""Print template.yaml as CloudFormation after the SAM transform, as JSON (run with .venv-sam).

The SAM translator comes with the SAM CLI and pins a pydantic the gateway cannot use, so it runs
in .venv-sam and test_sam_cli.py reads its output. Local code paths become placeholder S3 URIs
(what `sam package` would put there); no AWS call is made: the Region comes from the environment
and the managed-policy loader refuses to be used (the template must not need AWS managed policies).

Usage: translate_template.py TEMPLATE [Name=Value ...]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        raise SystemExit("the template asked for AWS managed policies")


def local_paths_to_s3(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                f"s3://placeholder-bucket/{value}"
                if key in {"CodeUri", "ContentUri"} and isinstance(value, str)
                else local_paths_to_s3(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [local_paths_to_s3(item) for item in node]
    return node


def main(argv: list[str]) -> None:
    with open(argv[1], encoding="utf-8") as file:
        template = local_paths_to_s3(yaml_parse(file.read()))
    parameters = dict(argument.split("=", 1) for argument in argv[2:])
    translated = transform(template, parameters, NoManagedPolicies())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main(sys.argv)

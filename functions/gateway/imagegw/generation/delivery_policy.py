"""How an entry point delivers images when the caller does not say: one decision, one owner.

Each entry point passes its policy, defined here side by side, to the use case:

    HTTP_DELIVERY           b64_json unless asked   OpenAI's own default
    JOB_DELIVERY            url only                a job's images are stored for later reads
                                                    (HTTP async, SQS, EventBridge, every
                                                    direct invoke: each one is recorded as a
                                                    job, see entrypoints/invocations.py)

Validation resolves ``response_format`` through it, and fallbacks validate against it too, so
a fallback model is delivered exactly as the requested one would have been.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegw.errors import InvalidValue
from imagegw.parameters import ResponseFormat


@dataclass(frozen=True)
class DeliveryPolicy:
    default: ResponseFormat
    # The one format this entry point can deliver (asking for another is a 400), if any.
    only: ResponseFormat | None = None

    def resolve(self, asked: str | None) -> ResponseFormat:
        if asked is None:
            return self.only or self.default
        try:
            wanted = ResponseFormat(asked)
        except ValueError:
            raise InvalidValue(
                f"Invalid value for 'response_format': '{asked}'. Supported values are: "
                f"{', '.join(repr(value.value) for value in ResponseFormat)}.",
                param="response_format",
            ) from None
        if self.only is not None and wanted is not self.only:
            raise InvalidValue(
                f"Invalid value for 'response_format': '{asked}'. This kind of request "
                f"delivers '{self.only.value}' only.",
                param="response_format",
            )
        return wanted


# The policy of each entry point (the table above).
HTTP_DELIVERY = DeliveryPolicy(ResponseFormat.B64_JSON)
JOB_DELIVERY = DeliveryPolicy(ResponseFormat.URL, only=ResponseFormat.URL)

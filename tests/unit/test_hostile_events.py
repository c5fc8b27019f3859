"""Events and job messages carry JSON the Lambda runtime already parsed: "\\ud800" arrives as text.

The request is turned back into a body and parsed like an HTTP one, so a lone surrogate is the
same 400 naming its field, never an encoding failure (a 500) on the way there (issue 12).
"""

from __future__ import annotations

import pytest

from imagegw.entrypoints.events import error_result, generation_event
from imagegw.errors import InvalidValue
from imagegw.generation.job_runner import request_text
from imagegw.schemas import parse_generation_request


@pytest.mark.parametrize("field", ["prompt", "model", "size", "user"])
def test_a_lone_surrogate_in_an_event_request_is_a_400_naming_the_field(field: str) -> None:
    request = {"prompt": "a fox", "model": "local/sketch", field: "x\ud800"}
    event = generation_event({"request": request}, where="event")
    with pytest.raises(InvalidValue) as caught:
        parse_generation_request(event.request)
    assert caught.value.param == field
    assert error_result(caught.value)["error"]["code"] == "invalid_unicode"
    with pytest.raises(InvalidValue):
        parse_generation_request(request_text(request))

"""The API under schemathesis: every operation of /openapi.json with generated requests (valid and
invalid), every default check (no 5xx, documented status codes, content types, headers and
bodies, invalid input refused, valid input accepted). A fixed seed and bounded examples keep it
repeatable in CI. (Schemathesis' pytest plugin does not run on pytest 9; its Python API does.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.factory import CaseEvents

EXAMPLES = 25

# Where the API answers 422 for a request its OpenAPI description cannot rule out (JSON Schema says
# nothing of how times compare or which catalog is coherent), or 503 by design, the check is told so.
CONFIG = """
[[operations]]
include-path = ["/events", "/scorecards", "/referrals/{referral_id}/exemption", "/catalog", "/calendar"]
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 403, 404, 409, 422]

[[operations]]
include-path = "/readyz"
checks.not_a_server_error.expected-statuses = ["2xx", 503]
"""


@pytest.fixture
def api(tmp_path, runtimes):
    runtime = runtimes(tmp_path, exemption_wait_seconds=0.1)  # its clock stands still: no version comes
    c = CaseEvents("SZ-FUZZ-1")
    runtime.clock.set(runtime.clock.now().replace(day=3, hour=12))
    assert runtime.post([c.submitted("2026-03-02 09:00"), c.accepted("2026-03-03 10:00", receipt_no="")]).status_code == 202
    # The token as the config's header, not added to each call: schemathesis then knows every
    # request carries it, and does not count a request it meant to send without one as accepted
    # invalid input (found with 200 examples).
    auth = f'headers = {{ Authorization = "Bearer {runtime.tokens["admin"]}" }}\n'
    schema = schemathesis.openapi.from_asgi("/openapi.json", runtime.embedded.app,
                                            config=schemathesis.Config.from_str(auth + CONFIG))
    # The event stream never ends by design; it is tested on its own (test_api.py).
    return runtime, schema.exclude(path="/alerts/stream")


def test_every_operation_holds_to_its_openapi_description(api):
    _, schema = api
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in GenerationMode:

            @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def holds(case):
                case.call_and_validate()

            try:
                holds()
            except Unsatisfiable:
                continue  # nothing to make invalid: an operation without parameters or body
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; failures reported together
                failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {str(exc)[:800]}")
    assert not failures, "\n\n".join(failures)

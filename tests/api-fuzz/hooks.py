"""Schemathesis hooks for roost-web's API, loaded by run.py (SCHEMATHESIS_HOOKS)."""

import os
import re

import schemathesis

# PUT /api/settings takes the whole roost.toml as `application/toml`: send generated bodies as text.
schemathesis.serializer.alias("application/toml", "text/plain")

# The API's designed answer when a daemon refuses a change and the controller puts every daemon
# back (module doc of roost-web's api.rs and controller.rs).
ROLLED_BACK = re.compile(r"refused the change .*; every daemon is back on the previous settings$", re.S)
# The lab runs no update agent (roost-lab's LAB_DAEMONS); run.py sets this when /api/updates says so.
NO_UPDATE_AGENT = os.environ.get("ROOST_FUZZ_NO_UPDATE_AGENT") == "1"


def _error(response):
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - not JSON is just "no error text"
        return ""
    return body.get("error", "") if isinstance(body, dict) else ""


@schemathesis.check
def not_a_server_error_but_rollback(ctx, response, case):
    """not_a_server_error, except two 502s the API answers by design and says so in its body:
    a change a daemon refused that was rolled back everywhere, and (only in a lab without an
    update agent) "update unreachable" from the /api/updates operations. Any other 5xx fails."""
    status = response.status_code
    if status < 500:
        return None
    if status == 502:
        error = _error(response)
        if ROLLED_BACK.search(error):
            return None
        if NO_UPDATE_AGENT and case.operation.path.startswith("/api/updates") and error.startswith("update unreachable"):
            return None
    raise AssertionError(f"server error {status}: {response.text[:500]}")

#!/usr/bin/env python3
"""API fuzz run of roost-web: schemathesis against /api/openapi.json, logged in, checking only
that no request gets a 5xx answer (`not_a_server_error`, less the two 502s the API gives by
design and names in its answer: see hooks.py), bounded (a few examples per
operation, one worker). Then checks that the run really used its session (else it tested only
the gate) and that the session still works.

Run by scripts/test-web inside the LAN client's namespace, after the browser test has set the
administrator password, with the schemathesis venv's python:

    ip netns exec rweb-client-lan VENV/bin/python tests/api-fuzz/run.py

Environment:
    ROOST_URL            the router as the LAN sees it (default https://192.168.1.1)
    ROOST_PASSWORD       the administrator password (required)
    ROOST_FUZZ_OUT       reports (JUnit, HAR) and the generated config (default target/api-fuzz)
    ROOST_FUZZ_EXAMPLES  examples per operation (default 25)
    ROOST_FUZZ_SEED      seed, to repeat a run (default: random; the run prints it)

Exit 0 when no 5xx was seen; 1 otherwise.
"""

import collections
import glob
import json
import os
import pathlib
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
BASE = os.environ.get("ROOST_URL", "https://192.168.1.1").rstrip("/")
PASSWORD = os.environ.get("ROOST_PASSWORD", "")
OUT = pathlib.Path(os.environ.get("ROOST_FUZZ_OUT", HERE / "../../target/api-fuzz")).resolve()
EXAMPLES = int(os.environ.get("ROOST_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("ROOST_FUZZ_SEED")

# Operations the run leaves out, and why.
EXCLUDED = {
    # Ends the session the run is logged in with; everything after would be a 401.
    "logout": "ends the run's own session",
}

# The router's certificate is self-signed.
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def request(method, path, body=None, headers=None):
    """One request; (status, headers, body text). HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, context=TLS, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def login():
    status, headers, text = request("POST", "/api/login", {"user": "admin", "password": PASSWORD})
    if status != 200:
        sys.exit(f"api-fuzz: POST /api/login answered {status}: {text}")
    cookie = next(
        (c.split(";")[0] for c in headers.get_all("set-cookie") or [] if c.startswith("roost_session=")),
        None,
    )
    if not cookie:
        sys.exit("api-fuzz: POST /api/login set no roost_session cookie")
    return cookie, json.loads(text)["csrf"]


def no_update_agent(auth_headers):
    """Whether this lab runs no update agent: /api/updates then answers 502 "update unreachable"."""
    status, _, text = request("GET", "/api/updates", headers=auth_headers)
    return status == 502 and "update unreachable" in text


def operations():
    """(template, regex) for every path of the spec; literal paths before templated ones."""
    status, _, text = request("GET", "/api/openapi.json")
    if status != 200:
        sys.exit(f"api-fuzz: GET /api/openapi.json answered {status}")
    paths = json.loads(text)["paths"]
    ops = [
        (template, re.compile("^" + "/".join("[^/]+" if p.startswith("{") else re.escape(p) for p in template.split("/")) + "$"))
        for template in paths
    ]
    return sorted(ops, key=lambda o: (o[0].count("{"), -len(o[0])))


def summary(har_path, ops):
    """From the HAR report: status counts per operation (path template), 5xx answers with their
    text, and how many requests to logged-in operations were not logged in (401, or 409 "set
    the password first")."""
    entries = json.loads(pathlib.Path(har_path).read_text())["log"]["entries"]
    per_op = collections.defaultdict(collections.Counter)
    server_errors = collections.Counter()
    unauth = total = 0
    for e in entries:
        path = "/" + e["request"]["url"].split("/", 3)[3].split("?")[0]
        template = next((t for t, rx in ops if rx.match(path)), path)
        status = e["response"]["status"]
        body = e["response"].get("content", {}).get("text", "") or ""
        op = f'{e["request"]["method"]} {template}'
        per_op[op][status] += 1
        if status >= 500:
            # One line per kind of answer: the text up to its first number or address.
            server_errors[f"{op} {status} {re.split(r'[0-9(]', body, maxsplit=1)[0][:90]}"] += 1
        if not template.startswith(("/api/login", "/api/setup", "/api/openapi.json")):
            total += 1
            if status == 401 or (status == 409 and "password first" in body):
                unauth += 1
    return per_op, server_errors, unauth, total


def main():
    if len(PASSWORD) < 8:
        sys.exit("api-fuzz: ROOST_PASSWORD is required")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    ops = operations()
    cookie, csrf = login()
    auth = {"Cookie": cookie, "x-csrf-token": csrf}
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(HERE / "hooks.py"))
    if no_update_agent(auth):
        print("api-fuzz: no update agent in this lab: its 502 \"update unreachable\" is accepted from /api/updates*")
        env["ROOST_FUZZ_NO_UPDATE_AGENT"] = "1"
    schemathesis = pathlib.Path(sys.executable).with_name("schemathesis")
    argv = [
        str(schemathesis), "run", f"{BASE}/api/openapi.json",
        "--url", BASE,
        # not_a_server_error, less the 502s the API answers by design (hooks.py).
        "--checks", "not_a_server_error_but_rollback",
        "--max-examples", str(EXAMPLES),
        "--workers", "1",
        "--tls-verify", "false",
        "--request-timeout", "35",
        # roost-web closes a keep-alive connection idle for 10 s (its header timeout); a request
        # sent on it just then meets a closed connection. Retried; a daemon that really died is
        # caught by scripts/test-web's lab status check.
        "--request-retries", "2",
        "--header", f"Cookie: {cookie}",
        "--header", f"x-csrf-token: {csrf}",
        # The spec names the session cookie and CSRF header as security schemes; without this,
        # schemathesis would send made-up values for them instead of ours.
        "--generation-with-security-parameters", "false",
        "--generation-database", "none",
        "--report", "junit,har",
        "--report-dir", str(OUT),
        "--no-color",
    ]
    for op in EXCLUDED:
        argv += ["--exclude-operation-id", op]
    if SEED:
        argv += ["--seed", SEED]
    print("api-fuzz: left out:", "; ".join(f"{k} ({v})" for k, v in EXCLUDED.items()))
    print("api-fuzz:", " ".join(a if "roost_session" not in a and csrf not in a else "<secret>" for a in argv))
    run = subprocess.run(argv, cwd=OUT, env=env, timeout=600)

    failures = []
    if run.returncode != 0:
        failures.append(f"schemathesis exited {run.returncode} (a 5xx answer, or an error above)")
    hars = sorted(glob.glob(str(OUT / "har-*.json")))
    if not hars:
        failures.append("schemathesis wrote no HAR report")
    else:
        per_op, server_errors, unauth, total = summary(hars[-1], ops)
        print("\napi-fuzz: answers per operation")
        for op in sorted(per_op, key=lambda o: (o.split()[1], o.split()[0])):
            counts = ", ".join(f"{s}×{n}" for s, n in sorted(per_op[op].items()))
            print(f"  {op:45} {counts}")
        print(f"api-fuzz: {sum(sum(c.values()) for c in per_op.values())} requests, "
              f"{unauth} of {total} to logged-in operations not logged in")
        if server_errors:
            print("api-fuzz: 5xx answers (each passed only if hooks.py accepts it):")
            for line, n in sorted(server_errors.items()):
                print(f"  {n:4}× {line}")
        if total == 0 or unauth > total // 10:
            failures.append("more than a tenth of the requests were not logged in: the run lost its session")
    status, _, text = request("GET", "/api/session", headers=auth)
    if status != 200:
        failures.append(f"after the run GET /api/session answered {status}: {text}")
    for f in failures:
        print(f"api-fuzz: FAILED: {f}", file=sys.stderr)
    print(f"api-fuzz: {1 if not failures else 0} passed, {len(failures) and 1} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

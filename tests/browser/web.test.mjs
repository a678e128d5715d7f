// Browser tests of roost-web, in the lab, as a household member would use it: headless Debian
// Chromium (driven by playwright-core) on the LAN client sets the first password, logs out and
// in, reserves a DHCP address (checked in roost-dhcp's /state), adds a port forward (checked in
// the firewall's nftables ruleset), turns on a block list whose file is missing (roost-dns
// refuses, the controller rolls back, the page says so and /settings records a failed version),
// and opens every page at laptop and phone size: each answers 200 with its heading, raises no
// console error, page error or CSP violation, and is saved as a full-page screenshot.
//
// Run by scripts/test-web, which brings up its own lab and runs this file inside the LAN client's
// namespace (`ip netns exec <prefix>-client-lan node --test web.test.mjs`). Environment:
//   ROOST_URL          the router as the LAN sees it (default https://192.168.1.1)
//   ROOST_PASSWORD     the administrator password to set on first run (required)
//   ROOST_LAB_PREFIX   the lab's namespace prefix (required: the checks look into its namespaces)
//   ROOST_LAB_STATE    the lab's state directory (default /var/lib/roost-lab/<prefix>)
//   ROOST_SCREENSHOTS  where screenshots and layout.json go (default ../../target/browser-screenshots)
//   CHROMIUM           the browser (default /usr/bin/chromium)
// The settings must have a disabled block list "ads" whose file does not exist.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.ROOST_URL || "https://192.168.1.1").replace(/\/$/, "");
const PASSWORD = process.env.ROOST_PASSWORD;
const PREFIX = process.env.ROOST_LAB_PREFIX;
const STATE = process.env.ROOST_LAB_STATE || `/var/lib/roost-lab/${PREFIX}`;
const SHOTS = resolve(process.env.ROOST_SCREENSHOTS || join(here, "../../target/browser-screenshots"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// What the test adds; chosen so it meets nothing in examples/roost.toml.
const RESERVATION = { mac: "02:00:00:00:00:51", ip: "192.168.1.51", hostname: "webtest" };
const FORWARD = { name: "webtest-ssh", port: "2222", to: "192.168.1.51", to_port: "22" };

let browser;
let context;
let page;
// Every console error, page error, CSP violation and failed sub-request, with the page it was on.
const problems = [];
// Per page and size: widths that show horizontal overflow (reported, see layout.json).
const layout = [];
// Refusals the test provokes on purpose ("400 /setup"): Chromium logs each document answered
// with an error status as a console error, which is then no problem of the page.
const provoked = new Set();

function netnsExec(ns, argv) {
    return execFileSync("ip", ["netns", "exec", `${PREFIX}-${ns}`, ...argv], {
        encoding: "utf8",
        timeout: 15_000,
    });
}

// Polls `probe` until it returns a truthy value or `ms` pass; returns its last value.
async function waitFor(probe, ms = 10_000, every = 250) {
    const end = Date.now() + ms;
    let value;
    for (;;) {
        value = await probe();
        if (value || Date.now() > end) return value;
        await new Promise((r) => setTimeout(r, every));
    }
}

function dhcpState() {
    const view = readFileSync(join(STATE, "etc/dhcp.toml"), "utf8");
    const control = view.split(/^\[/m).find((s) => s.startsWith("control]"));
    const listen = control && control.match(/^listen\s*=\s*"([^"]+)"/m);
    assert.ok(listen, `no [control] listen in ${STATE}/etc/dhcp.toml`);
    const token = readFileSync(join(STATE, "tokens/dhcp"), "utf8").trim();
    const body = netnsExec("dhcp", [
        "curl", "-sf", "-m", "5", "-H", `Authorization: Bearer ${token}`, `http://${listen[1]}/state`,
    ]);
    return JSON.parse(body);
}

function ruleset() {
    return netnsExec("fw", ["nft", "list", "ruleset"]);
}

// Submits with `button` a form that must be refused with `status` (a page with an error box).
async function submitRefused(button, path, status) {
    provoked.add(`${status} ${path}`);
    const [response] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === path),
        button.click(),
    ]);
    await page.waitForLoadState("load");
    assert.equal(response.status(), status, `POST ${path} answered ${response.status()}: ${await page.locator("main").innerText()}`);
    return page.locator(".flash.error").innerText();
}

// Submits with `button` a form whose answer must redirect to `to`; fails with the page's words
// when it does not (a refusal page, say).
async function submitTo(button, to) {
    const [response] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST" && r.request().resourceType() === "document"),
        button.click(),
    ]);
    await page.waitForLoadState("load");
    const path = new URL(response.url()).pathname;
    assert.equal(response.status(), 303, `POST ${path} answered ${response.status()}: ${await page.locator("main").innerText()}`);
    assert.equal(new URL(page.url()).pathname, to, `POST ${path} led to ${page.url()}`);
}

// Whether the first-run and login tests left the browser logged in; the later tests need it.
let loggedIn = false;
function needLogin() {
    assert.ok(loggedIn, "not logged in: the first-run or login test failed, see above");
}

// Opens `path`, checks it answered 200 with a heading, and returns the response.
async function open(path) {
    const response = await page.goto(BASE + path, { waitUntil: "load" });
    assert.equal(response.status(), 200, `GET ${path}: status ${response.status()}`);
    await page.locator("h1").first().waitFor();
    return response;
}

async function flash() {
    const box = page.locator("main .flash").first();
    await box.waitFor({ timeout: 15_000 });
    return { error: (await box.getAttribute("class")).includes("error"), text: await box.innerText() };
}

// Full-page screenshots of the page now shown at both sizes, and its horizontal overflow.
async function screenshots(name) {
    for (const [size, viewport] of [["laptop", LAPTOP], ["phone", PHONE]]) {
        await page.setViewportSize(viewport);
        await page.reload({ waitUntil: "load" });
        const overflow = await page.evaluate(() => {
            const vw = document.documentElement.clientWidth;
            const wide = [...document.querySelectorAll("body *")]
                .filter((el) => el.getBoundingClientRect().right > vw + 1)
                .filter((el) => !el.closest(".scroll") && !el.closest("header nav"))
                .map((el) => el.tagName.toLowerCase() + (el.type ? `[type=${el.type}]` : "") +
                    (el.className ? "." + String(el.className).trim().replace(/\s+/g, ".") : ""));
            return { viewport: vw, scrollWidth: document.documentElement.scrollWidth, wide: [...new Set(wide)].slice(0, 10) };
        });
        layout.push({ page: name, size, ...overflow });
        await page.screenshot({ path: join(SHOTS, `${name}-${size}.png`), fullPage: true });
    }
    await page.setViewportSize(LAPTOP);
}

function problemsOn(path) {
    return problems.filter((p) => new URL(p.url, BASE).pathname === path);
}

before(async () => {
    assert.ok(PASSWORD && PASSWORD.length >= 8, "ROOST_PASSWORD (8 characters or more) is required");
    assert.ok(PREFIX, "ROOST_LAB_PREFIX is required");
    mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        // Root needs --no-sandbox. The rest keeps Chromium's own traffic (updates, autofill,
        // sign-in, ...) from even asking the lab's resolver: it resolves no name at all, and the
        // test uses only the router's address.
        args: [
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-pings",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
            "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
            `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${new URL(BASE).hostname}`,
        ],
    });
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: LAPTOP, colorScheme: "light" });
    context.setDefaultTimeout(15_000);
    // CSP violations as the page sees them (the console also reports them, as errors).
    await context.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) => {
            console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
        });
    });
    page = await context.newPage();
    page.on("console", (msg) => {
        if (msg.type() !== "error") return;
        const status = msg.text().match(/^Failed to load resource: the server responded with a status of (\d+)/);
        const at = msg.location().url;
        if (status && at && provoked.has(`${status[1]} ${new URL(at).pathname}`)) return;
        problems.push({ url: page.url(), kind: "console", text: msg.text() });
    });
    page.on("pageerror", (err) => problems.push({ url: page.url(), kind: "pageerror", text: String(err) }));
    page.on("requestfailed", (req) =>
        problems.push({ url: page.url(), kind: "requestfailed", text: `${req.url()}: ${req.failure()?.errorText}` }),
    );
    page.on("response", (res) => {
        const type = res.request().resourceType();
        if (type !== "document" && res.status() >= 400) {
            problems.push({ url: page.url(), kind: "subresource", text: `${res.status()} ${res.url()}` });
        }
    });
    // A data-confirm form asks first; the test says yes.
    page.on("dialog", (d) => d.accept());
});

after(async () => {
    writeFileSync(join(SHOTS, "layout.json"), JSON.stringify({ layout, problems }, null, 2));
    await browser?.close();
});

test("first run: every page leads to /setup, which sets the password and logs in", async () => {
    const response = await page.goto(BASE + "/", { waitUntil: "load" });
    assert.equal(new URL(page.url()).pathname, "/setup", "GET / must redirect to /setup");
    assert.equal(response.status(), 200);
    await screenshots("setup");
    // Two different passwords are refused, with a message, and nothing is set.
    await page.fill('input[name="password"]', PASSWORD);
    await page.fill('input[name="again"]', PASSWORD + "x");
    const differ = await submitRefused(page.getByRole("button", { name: "Set the administrator password" }), "/setup", 400);
    assert.match(differ, /differ/);
    await page.fill('input[name="password"]', PASSWORD);
    await page.fill('input[name="again"]', PASSWORD);
    await submitTo(page.getByRole("button", { name: "Set the administrator password" }), "/");
    assert.equal(await page.locator("main h1").innerText(), "Overview");
    loggedIn = true;
    // Once set, /setup is gone.
    await page.goto(BASE + "/setup", { waitUntil: "load" });
    assert.equal(new URL(page.url()).pathname, "/login", "/setup must send to /login once a password is set");
    assert.deepEqual(problemsOn("/setup"), []);
});

test("log out, a wrong password is refused, the right one logs in", async () => {
    needLogin();
    loggedIn = false;
    await open("/");
    await submitTo(page.getByRole("button", { name: "Log out" }), "/login");
    // Logged out: the pages send to /login.
    await page.goto(BASE + "/dhcp", { waitUntil: "load" });
    assert.equal(new URL(page.url()).pathname, "/login");
    await screenshots("login");
    assert.equal(await page.inputValue('input[name="user"]'), "admin");
    await page.fill('input[name="password"]', "not-the-password");
    const wrong = await submitRefused(page.getByRole("button", { name: "Log in" }), "/login", 401);
    assert.match(wrong, /Wrong user name or password/);
    await page.fill('input[name="password"]', PASSWORD);
    await submitTo(page.getByRole("button", { name: "Log in" }), "/");
    assert.equal(await page.locator("main h1").innerText(), "Overview");
    loggedIn = true;
    assert.deepEqual(problemsOn("/login"), []);
});

test("reserving an address reaches roost-dhcp", async () => {
    needLogin();
    await open("/dhcp");
    const form = page.locator('form[action="/dhcp/reservations"]');
    await form.locator('select[name="zone"]').selectOption("lan");
    await form.locator('input[name="mac"]').fill(RESERVATION.mac);
    await form.locator('input[name="ip"]').fill(RESERVATION.ip);
    await form.locator('input[name="hostname"]').fill(RESERVATION.hostname);
    await submitTo(form.getByRole("button", { name: "Reserve" }), "/dhcp");
    const f = await flash();
    assert.equal(f.error, false, `flash: ${f.text}`);
    assert.match(f.text, new RegExp(`Reserved ${RESERVATION.ip.replaceAll(".", "\\.")}\\.`));
    const row = page.locator("table tr", { hasText: RESERVATION.ip });
    await assert.doesNotReject(row.first().waitFor(), "the reservation is listed");
    assert.match(await row.first().innerText(), new RegExp(RESERVATION.hostname));
    // The DHCP server itself has it in force.
    const state = await waitFor(() => {
        const s = dhcpState();
        return s.reservations.some((r) => r.ip === RESERVATION.ip) && s;
    });
    assert.ok(state, "roost-dhcp /state does not list the new reservation");
    const r = state.reservations.find((r) => r.ip === RESERVATION.ip);
    assert.equal(r.mac, RESERVATION.mac);
    assert.equal(r.hostname, RESERVATION.hostname);
    assert.equal(r.zone, "lan");
});

test("adding a port forward reaches the firewall's ruleset", async () => {
    needLogin();
    await open("/firewall");
    const form = page.locator('form[action="/firewall/port-forwards"]');
    await form.locator('input[name="name"]').fill(FORWARD.name);
    await form.locator('select[name="protocol"]').selectOption("tcp");
    await form.locator('input[name="port"]').fill(FORWARD.port);
    await form.locator('input[name="to"]').fill(FORWARD.to);
    await form.locator('input[name="to_port"]').fill(FORWARD.to_port);
    await form.locator('select[name="enabled"]').selectOption("true");
    await submitTo(form.getByRole("button", { name: "Add" }), "/firewall");
    const f = await flash();
    assert.equal(f.error, false, `flash: ${f.text}`);
    const row = page.locator("table tr", { hasText: FORWARD.name });
    assert.match(await row.first().innerText(), new RegExp(`${FORWARD.to}:${FORWARD.to_port}`));
    const rule = new RegExp(`tcp dport ${FORWARD.port} dnat ip to ${FORWARD.to.replaceAll(".", "\\.")}:${FORWARD.to_port}\\b`);
    const rules = await waitFor(() => rule.test(ruleset()));
    assert.ok(rules, `the firewall's ruleset has no rule matching ${rule}`);
});

test("a change a daemon refuses is rolled back and reported", async () => {
    needLogin();
    await open("/dns");
    const item = page.locator("ul.switches li", { hasText: "ads" });
    assert.equal(await item.locator(".pill").innerText(), "off");
    await submitTo(item.getByRole("button", { name: "Turn on" }), "/dns");
    const f = await flash();
    assert.equal(f.error, true, `expected an error flash, got: ${f.text}`);
    assert.match(f.text, /dns refused the change/);
    assert.match(f.text, /every daemon is back on the previous settings/);
    // The block list is still off, and can still be turned on.
    const again = page.locator("ul.switches li", { hasText: "ads" });
    assert.equal(await again.locator(".pill").innerText(), "off");
    assert.equal(await again.getByRole("button").innerText(), "Turn on");
    // The other daemons kept what they had: the port forward made before is still in force.
    assert.match(ruleset(), new RegExp(`tcp dport ${FORWARD.port} dnat`));
    // And roost-dns runs on, healthy (the overview shows the controller's last look, taken every
    // 10 s: wait for one).
    const dnsLine = await waitFor(async () => {
        await open("/");
        const text = await page.locator("ul.services li", { hasText: "dns" }).innerText();
        return /running/.test(text) && text;
    }, 25_000, 2_000);
    assert.ok(dnsLine, "the overview does not show dns running after the rollback");
    // The settings history records the failed version, with the reason.
    await open("/settings");
    const failed = page.locator("table tr", { has: page.locator(".pill.bad", { hasText: "failed" }) });
    assert.equal(await failed.count(), 1, "one failed version in /settings");
    assert.match(await failed.first().innerText(), /refused/);
    // The current version is not the failed one.
    const current = page.locator("table tr", { has: page.locator(".pill.ok", { hasText: "current" }) });
    assert.equal(await current.count(), 1);
    assert.doesNotMatch(await current.first().innerText(), /failed/);
});

const PAGES = [
    ["/", "overview", "Overview"],
    ["/dhcp", "dhcp", "Devices"],
    ["/dns", "dns", "DNS"],
    ["/firewall", "firewall", "Port forwards"],
    ["/zones", "zones", "Zones"],
    ["/mqtt", "mqtt", "MQTT"],
    ["/updates", "updates", "Updates"],
    ["/settings", "settings", "Settings"],
];

for (const [path, name, title] of PAGES) {
    test(`page ${path}: 200, its heading, no console error or CSP violation; screenshots`, async () => {
        needLogin();
        const before = problems.length;
        await open(path);
        assert.equal(await page.locator("main h1").innerText(), title);
        // Its navigation entry is the highlighted one.
        assert.equal(await page.locator("header nav a.active").innerText(), title);
        // The stylesheet and script loaded (the CSP allows only 'self').
        const styled = await page.evaluate(() => getComputedStyle(document.body).margin === "0px");
        assert.ok(styled, "app.css did not apply");
        await screenshots(name);
        assert.deepEqual(problems.slice(before), [], `problems on ${path}`);
    });
}

test("no console error, page error or CSP violation anywhere", () => {
    assert.deepEqual(problems, []);
});

test("no page is wider than the screen (no sideways scrolling at laptop or phone size)", () => {
    // Tables may scroll inside their .scroll box and the phone's menu inside the header; the
    // page itself must not.
    // Every page was measured at both sizes (else this would pass on nothing).
    assert.equal(layout.length, 2 * (PAGES.length + 2), "not every page was opened at both sizes");
    const wide = layout.filter((l) => l.scrollWidth > l.viewport);
    assert.deepEqual(
        wide.map((l) => `${l.page} at ${l.size} size: ${l.scrollWidth}px wide in ${l.viewport}px (${l.wide.join(", ")})`),
        [],
    );
});

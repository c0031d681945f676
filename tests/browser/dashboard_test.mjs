// The lab's dashboard as a person sees it: starts `ringflow-lab --serve` on
// a free port with a short run, opens the page in headless Chromium, waits
// for events to arrive and the charts to change, for the summary table at
// the end, checks that a page opened after the run shows the same, that no
// console or page error happened, and that the screenshot is not blank (it
// holds the strategies' colours). The lab is stopped at the end, whatever
// happened (SIGINT: it must exit 0).
//
//   node dashboard_test.mjs LAB_EXE SCREENSHOT.png [LAB_ARGS...]
//
// Exit 0 passed, 1 failed, 77 skipped (no Chromium, no playwright-core).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const [labExe, screenshotPath, ...extraArgs] = process.argv.slice(2);
if (!labExe || !screenshotPath) {
  console.error("usage: node dashboard_test.mjs LAB_EXE SCREENSHOT.png [LAB_ARGS...]");
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: no Chromium at ${CHROMIUM} (scripts/setup.sh --tests installs it)`);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  console.log("SKIP: playwright-core is not installed (scripts/setup.sh --tests: npm ci in tests/browser)");
  process.exit(77);
}

// Slower builds (sanitizers) get longer, never shorter, waits.
const SLOW = Number(process.env.DASHBOARD_TIME_FACTOR || "1");
const labArgs = extraArgs.length
  ? extraArgs
  : ["--scenario", "overload,stall", "--duration", "0.6", "--rate", "4000", "--payload", "256"];

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? "ok" : "FAILED"}: ${what}`);
  if (!ok) failures++;
  return ok;
}

// Starts the lab; resolves with its URL once it printed it.
function startLab() {
  const lab = spawn(labExe, ["--serve", "127.0.0.1:0", "--quiet", ...labArgs], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "", stdout = "";
  lab.exited = new Promise((resolve) => lab.on("exit", (code, signal) => resolve({ code, signal })));
  lab.stdout.on("data", (d) => { stdout += d; });
  lab.output = () => ({ stdout, stderr });
  const url = new Promise((resolve, reject) => {
    lab.stderr.on("data", (d) => {
      stderr += d;
      const m = /dashboard at (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]);
    });
    lab.exited.then(({ code, signal }) => reject(new Error(`the lab exited (${code ?? signal}) before serving:\n${stderr}`)));
    setTimeout(() => reject(new Error(`no URL from the lab within 30 s:\n${stderr}`)), 30000 * SLOW);
  });
  return { lab, url };
}

function watchErrors(page, errors, name) {
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${name} console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`${name} page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    // A stream the page closes itself (EventSource.close) is not a failure.
    if (!r.url().endsWith("/events")) errors.push(`${name} request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
}

const totalPoints = () =>
  [...document.querySelectorAll("canvas")].reduce((n, c) => n + Number(c.dataset.points || 0), 0);

// Decodes the PNG in the browser and reports how much of it is not
// background, how many colours it has, and which of the given colours occur.
async function pictureStats(browser, png, colors) {
  const page = await browser.newPage();
  try {
    await page.setContent("<canvas id=c></canvas>");
    return await page.evaluate(async ({ b64, colors }) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.getElementById("c");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      const distinct = new Set();
      let inked = 0;
      const want = colors.map((h) => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]);
      const found = new Array(colors.length).fill(0);
      for (let i = 0; i < px.length; i += 4) {
        const r = px[i], gr = px[i + 1], b = px[i + 2];
        distinct.add((r << 16) | (gr << 8) | b);
        if (r < 235 || gr < 235 || b < 235) inked++;
        want.forEach(([wr, wg, wb], k) => {
          if (Math.abs(r - wr) < 12 && Math.abs(gr - wg) < 12 && Math.abs(b - wb) < 12) found[k]++;
        });
      }
      return { width: c.width, height: c.height, distinct: distinct.size, inkedShare: inked / (px.length / 4), found };
    }, { b64: png.toString("base64"), colors });
  } finally {
    await page.close();
  }
}

const { lab, url: urlPromise } = startLab();
let browser;
try {
  const url = await urlPromise;
  console.log(`lab at ${url}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  const page = await context.newPage();
  watchErrors(page, errors, "live page");
  await page.goto(url);

  // Events arrive and are drawn.
  await page.waitForFunction(totalPoints, null, { timeout: 30000 * SLOW });
  const first = await page.evaluate(() => ({
    points: [...document.querySelectorAll("canvas")].reduce((n, c) => n + Number(c.dataset.points || 0), 0),
    image: document.querySelector("canvas[data-points]:not([data-points='0'])").toDataURL(),
    seq: Number(document.body.dataset.seq),
    state: document.body.dataset.state,
  }));
  check(first.points > 0, `the charts drew points (${first.points}) from the events (seq ${first.seq})`);
  check(first.state === "running" || first.state === "done", `the page says the lab is running (${first.state})`);
  // A later moment: more points, a different picture.
  await page.waitForFunction((n) => {
    const now = [...document.querySelectorAll("canvas")].reduce((s, c) => s + Number(c.dataset.points || 0), 0);
    return now >= n + 20;
  }, first.points, { timeout: 30000 * SLOW });
  const second = await page.evaluate(() => ({
    points: [...document.querySelectorAll("canvas")].reduce((n, c) => n + Number(c.dataset.points || 0), 0),
    seq: Number(document.body.dataset.seq),
  }));
  const changed = await page.evaluate((before) => [...document.querySelectorAll("canvas")].some((c) => c.toDataURL() !== before), first.image);
  check(second.points > first.points && second.seq > first.seq,
        `the charts changed as events arrived (points ${first.points} -> ${second.points}, seq ${first.seq} -> ${second.seq})`);
  check(changed, "the drawn pixels changed between the two moments");

  // The end: the summary table, a row per run.
  await page.waitForSelector("body[data-state='done']", { timeout: 120000 * SLOW });
  const summary = await page.evaluate(() => ({
    visible: !document.getElementById("summary").hidden,
    rows: document.querySelectorAll("#summary-table tbody tr[data-strategy]").length,
    status: document.getElementById("status-text").textContent,
    expected: Number(document.body.dataset.runs),
  }));
  check(summary.visible, "the summary table is shown at the end");
  check(summary.rows > 0 && summary.rows === summary.expected, `a row per run (${summary.rows} of ${summary.expected})`);
  check(/every accounting identity holds/.test(summary.status), `status: ${summary.status}`);

  // The screenshot, not blank: ink, many colours, and the SVG plot's colour of every strategy.
  await page.evaluate(() => window.scrollTo(0, 0));
  const png = await page.screenshot({ path: screenshotPath, fullPage: true });
  const strategyColors = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd"];
  const stats = await pictureStats(browser, png, strategyColors);
  check(stats.width >= 1000 && stats.height >= 600, `screenshot ${stats.width}x${stats.height} (${screenshotPath})`);
  check(stats.distinct >= 50, `screenshot has ${stats.distinct} distinct colours`);
  check(stats.inkedShare > 0.03, `screenshot is ${(100 * stats.inkedShare).toFixed(1)}% ink`);
  check(stats.found.every((n) => n >= 20), `every strategy's colour is drawn (${stats.found.join(", ")} px)`);

  // A page opened after the run shows the finished results (from the snapshot).
  const late = await context.newPage();
  watchErrors(late, errors, "late page");
  await late.goto(url);
  await late.waitForSelector("body[data-state='done']", { timeout: 30000 * SLOW });
  const lateView = await late.evaluate(() => ({
    rows: document.querySelectorAll("#summary-table tbody tr[data-strategy]").length,
    points: [...document.querySelectorAll("canvas")].reduce((n, c) => n + Number(c.dataset.points || 0), 0),
  }));
  const liveView = await page.evaluate(totalPoints);
  check(lateView.rows === summary.rows, `the late page has the same table (${lateView.rows} rows)`);
  check(lateView.points === liveView, `the late page drew the same points (${lateView.points} vs ${liveView})`);

  // The stream itself: an event-stream the server keeps open.
  const head = await late.evaluate(async () => {
    const ctl = new AbortController();
    const res = await fetch("events", { signal: ctl.signal });
    const type = res.headers.get("content-type");
    ctl.abort();
    return { status: res.status, type };
  });
  check(head.status === 200 && /^text\/event-stream/.test(head.type || ""), `/events is an event stream (${head.status} ${head.type})`);
  const missing = (await fetch(new URL("no-such-page", url))).status;  // from node: a 404 in the page logs an error
  check(missing === 404, `an unknown path is 404 (${missing})`);

  await page.close();
  await late.close();
  check(errors.length === 0, `no console or page errors${errors.length ? ":\n  " + errors.join("\n  ") : ""}`);
} catch (e) {
  check(false, `${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  // Stopped as a person would: Ctrl-C. It must end, and exit 0 after a full run.
  if (lab.exitCode === null && lab.signalCode === null) lab.kill("SIGINT");
  const timer = setTimeout(() => lab.kill("SIGKILL"), 15000 * SLOW);
  const { code, signal } = await lab.exited;
  clearTimeout(timer);
  if (!check(code === 0, `the lab exited ${code ?? signal} on SIGINT`)) console.log(lab.output().stderr);
  check(/offered = delivered \+ dropped \+ left holds/.test(lab.output().stdout), "the lab printed its table");
}
console.log(failures ? `${failures} check(s) failed` : "all checks passed");
process.exit(failures ? 1 : 0);

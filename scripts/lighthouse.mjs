// Runs Lighthouse three times per page and form factor, then prints the medians.
// Called by scripts/lighthouse: node lighthouse.mjs LIGHTHOUSE_HOME BASE_URL COOKIE OUT_DIR
// COOKIE is "name=value", the session of a person who can see the room and search pages.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [home, base, cookie, out] = process.argv.slice(2);
const modules = path.join(home, "node_modules");
const require = createRequire(path.join(modules, "lighthouse", "package.json"));
const puppeteer = require("puppeteer-core");
const load = (file) => import(pathToFileURL(path.join(modules, "lighthouse", file)).href);
const lighthouse = (await load("core/index.js")).default;
const desktopConfig = (await load("core/config/desktop-config.js")).default;

const pages = [
  { name: "login", path: "/login", loggedIn: false },
  { name: "room", path: "/rooms/lobby", loggedIn: true },
  { name: "search", path: "/search?q=plan", loggedIn: true },
];
// LIGHTHOUSE_PAGES="room search" measures only those pages.
const only = (process.env.LIGHTHOUSE_PAGES || "").split(/\s+/).filter(Boolean);
const measured = pages.filter((page) => only.length === 0 || only.includes(page.name));
const forms = { mobile: undefined, desktop: desktopConfig };
const categories = ["performance", "accessibility", "best-practices"];
const [cookieName, ...cookieValue] = cookie.split("=");

async function measure(page, form, n) {
  // A fresh browser each run, as the command line tool starts one: nothing is cached.
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROME_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const tab = await browser.newPage();
    if (page.loggedIn) {
      await tab.setCookie({
        name: cookieName,
        value: cookieValue.join("="),
        url: base,
        httpOnly: true,
        sameSite: "Lax",
      });
    }
    const result = await lighthouse(
      base + page.path,
      { output: "json", onlyCategories: categories, logLevel: "error" },
      forms[form],
      tab,
    );
    if (result.lhr.runtimeError) {
      throw new Error(`${page.name} ${form}: ${result.lhr.runtimeError.message}`);
    }
    if (page.loggedIn && !result.lhr.finalDisplayedUrl.startsWith(base + page.path)) {
      throw new Error(`${page.name} ${form}: ended at ${result.lhr.finalDisplayedUrl}, not logged in`);
    }
    fs.writeFileSync(path.join(out, `${page.name}-${form}-${n}.json`), result.report);
    return result.lhr;
  } finally {
    await browser.close();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const page of measured) {
  for (const form of Object.keys(forms)) {
    const runs = [];
    for (const n of [1, 2, 3]) runs.push(await measure(page, form, n));
    const score = (id) => median(runs.map((r) => Math.round(r.categories[id].score * 100)));
    const audit = (id) => median(runs.map((r) => r.audits[id].numericValue));
    rows.push([
      page.name.padEnd(8),
      form.padEnd(8),
      String(score("performance")).padStart(4),
      String(score("accessibility")).padStart(5),
      String(score("best-practices")).padStart(5),
      audit("cumulative-layout-shift").toFixed(3).padStart(6),
      String(Math.round(audit("total-blocking-time"))).padStart(7),
      String(Math.round(audit("largest-contentful-paint"))).padStart(7),
    ].join(" "));
  }
}
console.log("page     form     perf  a11y  best    CLS  TBT ms  LCP ms");
for (const row of rows) console.log(row);

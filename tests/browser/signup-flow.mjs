// Drives the example app's pages in Debian's Chromium, as a person would:
// sign up -> dashboard shows the email -> sign out -> /dashboard redirects to sign-in
// with ?next=%2Fdashboard -> sign in again -> dashboard.
//
// Usage: node tests/browser/signup-flow.mjs http://127.0.0.1:PORT   (or APP_URL=...)
// Env: SCREENSHOT_DIR  where to save a screenshot of the page when a step fails.
// Exits 0 when every step passed, 1 (with the failed step on stderr) otherwise.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 15_000;

const base = (process.argv[2] ?? process.env.APP_URL ?? '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node signup-flow.mjs APP_URL   (or set APP_URL), e.g. http://127.0.0.1:3000');
  process.exit(2);
}

const email = `browser-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = 'correct horse battery staple 42';
const name = 'Browser Test';

let currentStep = 'launching Chromium';
let page;

/** Runs one named step; the name is what a failure reports. */
async function step(what, body) {
  currentStep = what;
  console.log(`- ${what}`);
  await body();
}

/** Fails unless `actual` satisfies `ok`, naming what was expected. */
function expect(ok, message) {
  if (!ok) {
    throw new Error(message);
  }
}

/** Waits until the page's URL has `path` as its pathname. */
async function waitForPath(path) {
  try {
    await page.waitForURL((url) => url.pathname === path, { timeout: STEP_TIMEOUT_MS });
  } catch (error) {
    const alert = await formError();
    throw new Error(
      `expected to land on ${path}, but the page is at ${page.url()}` +
        (alert ? ` and shows the error ${JSON.stringify(alert)}` : '') +
        ` (${firstLine(error)})`,
    );
  }
}

/** The text of the page's `#form-error` alert, if it shows one. */
async function formError() {
  try {
    const alert = page.locator('#form-error');
    if ((await alert.count()) > 0 && (await alert.isVisible())) {
      return (await alert.innerText()).trim();
    }
  } catch {
    // The page may be navigating; no alert then.
  }
  return '';
}

/** Opens `path` and checks that it has the form `formId`. */
async function openForm(path, formId) {
  const response = await page.goto(base + path, { timeout: STEP_TIMEOUT_MS });
  const status = response ? response.status() : 'no response';
  const form = page.locator(`form#${formId}`);
  try {
    await form.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Error(
      `${base + path} (HTTP ${status}) has no visible <form id="${formId}"> ` +
        `(final URL ${page.url()}, title ${JSON.stringify(await page.title())})`,
    );
  }
  return form;
}

/** Fills the named inputs of `form`. */
async function fill(form, values) {
  for (const [field, value] of Object.entries(values)) {
    const input = form.locator(`input[name="${field}"]`);
    expect((await input.count()) === 1, `the form has no single <input name="${field}">`);
    await input.fill(value, { timeout: STEP_TIMEOUT_MS });
  }
}

function firstLine(error) {
  return String(error?.message ?? error).split('\n')[0];
}

async function main() {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    // This machine's network is closed: keep Chromium from calling home.
    args: [
      ...(asRoot ? ['--no-sandbox'] : []),
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page = await context.newPage();

    await step(`sign up as ${email} on /sign-up`, async () => {
      const form = await openForm('/sign-up', 'sign-up-form');
      await fill(form, { name, email, password });
      await form.locator('button[type="submit"]').click();
      await waitForPath('/dashboard');
    });

    await step('the dashboard shows the new account', async () => {
      const shown = page.locator('#user-email');
      await shown.waitFor({ state: 'visible' });
      const text = (await shown.innerText()).trim();
      expect(text === email, `#user-email shows ${JSON.stringify(text)}, expected ${email}`);
    });

    await step('sign out with #sign-out', async () => {
      await page.locator('#sign-out').click();
      await waitForPath('/sign-in');
    });

    await step('/dashboard without a session redirects to /sign-in?next=%2Fdashboard', async () => {
      await page.goto(`${base}/dashboard`);
      const url = page.url();
      expect(
        url.includes('/sign-in') && url.includes('next=%2Fdashboard'),
        `after sign-out /dashboard landed on ${url}, expected /sign-in?next=%2Fdashboard`,
      );
    });

    await step('sign in again on /sign-in?next=%2Fdashboard', async () => {
      const form = await openForm('/sign-in?next=%2Fdashboard', 'sign-in-form');
      await fill(form, { email, password });
      await form.locator('button[type="submit"]').click();
      await waitForPath('/dashboard');
      const text = (await page.locator('#user-email').innerText()).trim();
      expect(text === email, `after sign-in #user-email shows ${JSON.stringify(text)}, expected ${email}`);
    });
  } catch (error) {
    await screenshot();
    throw error;
  } finally {
    await browser.close().catch(() => {});
  }
}

async function screenshot() {
  const dir = process.env.SCREENSHOT_DIR;
  if (!dir || !page) {
    return;
  }
  try {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `signup-flow-failure-${Date.now()}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
    console.error(`screenshot: ${file}`);
  } catch (error) {
    console.error(`could not save a screenshot: ${firstLine(error)}`);
  }
}

try {
  await main();
  console.log(`signup-flow: all steps passed against ${base}`);
} catch (error) {
  console.error(`signup-flow FAILED at step "${currentStep}" against ${base}:\n  ${firstLine(error)}`);
  process.exitCode = 1;
}

// Drives the example app's second-factor pages in Debian's Chromium, as a person would:
// sign up -> add a passkey on the security page (Chromium's virtual authenticator) -> sign
// out -> sign in with the passkey alone -> dashboard -> set up an authenticator app (TOTP)
// from the secret the page shows, with codes this script computes (RFC 6238 on node:crypto)
// -> recovery codes shown -> sign out -> sign in with the password -> second step -> a TOTP
// code -> dashboard -> a new workspace's members page shows 2FA on for its owner, who then
// requires it of every member.
//
// The app's origin must have a host name (WebAuthn takes no IP address as relying party):
// run it with APP_ORIGIN=http://localhost:PORT and give that URL here.
//
// Step-up: with STEP_UP_MAX_AGE_SECS set to the app's AUTH_STEP_UP_MAX_AGE_SECS, the script
// waits that long after the passkey sign-in before setting up TOTP, so that the page must ask
// for a re-authentication (the dialog, answered with the password) before it goes on.
//
// Usage: node tests/browser/mfa-flow.mjs http://localhost:PORT   (or APP_URL=...)
// Env: SCREENSHOT_DIR  where to save a screenshot of the page when a step fails;
//      STEP_UP_MAX_AGE_SECS  as above.
// Exits 0 when every step passed, 1 (with the failed step on stderr) otherwise.

import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 15_000;
const TOTP_STEP_SECS = 30;

const base = (process.argv[2] ?? process.env.APP_URL ?? '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node mfa-flow.mjs APP_URL   (or set APP_URL), e.g. http://localhost:3000');
  process.exit(2);
}

const email = `mfa-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = 'correct horse battery staple 42';
const name = 'MFA Browser Test';
const passkeyName = 'Virtual authenticator';
const stepUpMaxAgeSecs = Number(process.env.STEP_UP_MAX_AGE_SECS) || 0;

let currentStep = 'launching Chromium';
let page;

// ---- RFC 6238 (TOTP) and RFC 4648 (base32), written here on node:crypto ----

/** Decodes RFC 4648 base32 (upper or lower case, padding and spaces ignored). */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=]/g, '');
  const out = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const index = alphabet.indexOf(ch);
    if (index < 0) {
      throw new Error(`${JSON.stringify(text)} is not base32 (${JSON.stringify(ch)})`);
    }
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The HOTP value (RFC 4226) of `key` at `counter`, `digits` long. */
function hotp(key, counter, digits) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary =
    ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** The TOTP step of `unixSeconds`. */
function totpStep(unixSeconds) {
  return Math.floor(unixSeconds / TOTP_STEP_SECS);
}

/** The 6-digit TOTP code of the base32 `secret` at TOTP step `step`. */
function totp(secret, step) {
  return hotp(base32Decode(secret), step, 6);
}

const nowSeconds = () => Date.now() / 1000;

// ---- Steps ----

/** Runs one named step; the name is what a failure reports. */
async function step(what, body) {
  currentStep = what;
  console.log(`- ${what}`);
  await body();
}

/** Fails unless `ok`, naming what was expected. */
function expect(ok, message) {
  if (!ok) {
    throw new Error(message);
  }
}

/** The texts of the page's visible alerts (its error messages). */
async function alerts() {
  const texts = [];
  try {
    for (const alert of await page.locator('[role="alert"]').all()) {
      if (await alert.isVisible()) {
        const text = (await alert.innerText()).trim();
        if (text) texts.push(text);
      }
    }
  } catch {
    // The page may be navigating; no alerts then.
  }
  return texts;
}

async function alertSuffix() {
  const shown = await alerts();
  return shown.length ? ` and shows ${JSON.stringify(shown)}` : '';
}

/** Waits until the page's URL has `path` as its pathname. */
async function waitForPath(path) {
  try {
    await page.waitForURL((url) => url.pathname === path, { timeout: STEP_TIMEOUT_MS });
  } catch (error) {
    throw new Error(
      `expected to land on ${path}, but the page is at ${page.url()}${await alertSuffix()} (${firstLine(error)})`,
    );
  }
}

/** Waits until `selector` is visible, failing with the page's alerts. */
async function visible(selector, what) {
  const locator = page.locator(selector);
  try {
    await locator.first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Error(`${what} (${selector}) did not show on ${page.url()}${await alertSuffix()}`);
  }
  return locator;
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

async function dashboardShowsTheAccount() {
  await waitForPath('/dashboard');
  const shown = await visible('#user-email', 'the signed-in email');
  const text = (await shown.innerText()).trim();
  expect(text === email, `#user-email shows ${JSON.stringify(text)}, expected ${email}`);
}

async function signOut() {
  await page.locator('#sign-out').click();
  await waitForPath('/sign-in');
}

/** Waits (outside any page timeout) until the TOTP step is past `step`. */
async function waitForStepAfter(stepUsed) {
  while (totpStep(nowSeconds()) <= stepUsed) {
    await sleep(250);
  }
}

/** Answers the re-authentication dialog (step-up) with the password. */
async function reauthenticateWithPassword() {
  await visible('#reauth-dialog[open]', 'the re-authentication dialog');
  await fill(page.locator('form#reauth-form'), { password });
  await page.locator('#reauth-form button[type="submit"]').click();
  try {
    await page.locator('#reauth-dialog[open]').waitFor({ state: 'detached', timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Error(`the re-authentication dialog stayed open${await alertSuffix()}`);
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
    await step('the test\'s TOTP matches RFC 6238\'s SHA-1 test vectors', async () => {
      // Appendix B: the secret "12345678901234567890"; 8-digit codes, whose last six are ours.
      const key = Buffer.from('12345678901234567890');
      const vectors = [
        [59, '94287082'],
        [1111111109, '07081804'],
        [1234567890, '89005924'],
        [20000000000, '65353130'],
      ];
      for (const [time, code] of vectors) {
        const got = hotp(key, totpStep(time), 8);
        expect(got === code, `at T=${time} the test's TOTP gives ${got}, RFC 6238 says ${code}`);
      }
      const base32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'; // the same secret in base32
      expect(base32Decode(base32).equals(key), 'base32 decoding of the RFC secret is wrong');
      expect(totp(base32, totpStep(59)) === '287082', 'the 6-digit code at T=59 is not 287082');
    });

    const context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page = await context.newPage();

    let authenticatorId;
    const cdp = await context.newCDPSession(page);
    await step('add a virtual authenticator (CTAP2, internal, resident keys, user verification)', async () => {
      await cdp.send('WebAuthn.enable', { enableUI: false });
      ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: {
          protocol: 'ctap2',
          transport: 'internal',
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      }));
    });

    await step(`sign up as ${email} on /sign-up`, async () => {
      const form = await openForm('/sign-up', 'sign-up-form');
      await fill(form, { name, email, password });
      await form.locator('button[type="submit"]').click();
      await dashboardShowsTheAccount();
    });

    await step('the security page lists no passkey and TOTP off', async () => {
      await page.goto(`${base}/dashboard/security`);
      await page.waitForFunction(
        () => document.getElementById('mfa-status')?.dataset.totp !== undefined,
        undefined,
        { timeout: STEP_TIMEOUT_MS },
      );
      const status = (await page.locator('#mfa-status').innerText()).trim();
      expect(status.includes('off') && status.includes('passkeys: 0'), `#mfa-status shows ${JSON.stringify(status)}`);
      await visible('#passkeys-none', 'the "no passkeys" line');
      await visible('#sessions tbody tr', 'the sessions list');
      const device = (await page.locator('#sessions tbody tr').first().innerText()).trim();
      expect(/Chrome|HeadlessChrome|Mozilla/.test(device), `the session row does not show the browser: ${JSON.stringify(device)}`);
    });

    await step(`add a passkey named "${passkeyName}"`, async () => {
      const form = page.locator('form#passkey-add-form');
      await fill(form, { name: passkeyName });
      await form.locator('button[type="submit"]').click();
      // On a slow run the sign-up may be older than the step-up age by now: then the page
      // asks to re-authenticate first.
      const row = page.locator('#passkeys tbody tr');
      await row.or(page.locator('#reauth-dialog[open]')).first().waitFor({ state: 'visible' });
      if (await page.locator('#reauth-dialog[open]').count()) {
        console.log('  (the sign-up is older than the step-up age: re-authenticating first)');
        await reauthenticateWithPassword();
      }
      await visible('#passkeys tbody tr', 'the new passkey in the list');
      const shownName = await page.locator('#passkeys tbody tr input[name="name"]').first().inputValue();
      expect(shownName === passkeyName, `the passkey is listed as ${JSON.stringify(shownName)}`);
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      expect(credentials.length === 1, `the authenticator holds ${credentials.length} credentials, expected 1`);
      expect(credentials[0].isResidentCredential, 'the passkey is not a discoverable (resident) credential');
    });

    await step('sign out with #sign-out', signOut);

    let signedInAt;
    await step('sign in with the passkey alone ("Sign in with a passkey")', async () => {
      await page.goto(`${base}/sign-in`);
      await (await visible('#passkey-sign-in', 'the passkey sign-in button')).click();
      await dashboardShowsTheAccount();
      signedInAt = Date.now();
    });

    if (stepUpMaxAgeSecs > 0) {
      await step(`setting up TOTP ${stepUpMaxAgeSecs} s after the sign-in asks to re-authenticate`, async () => {
        const wait = signedInAt + (stepUpMaxAgeSecs + 1) * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        await page.goto(`${base}/dashboard/security`);
        await (await visible('#totp-begin', 'the "Set up an authenticator app" button')).click();
        await reauthenticateWithPassword();
      });
    }

    let secret;
    await step('begin an authenticator app enrolment: the QR code and the secret show', async () => {
      if (stepUpMaxAgeSecs === 0) {
        await page.goto(`${base}/dashboard/security`);
        await (await visible('#totp-begin', 'the "Set up an authenticator app" button')).click();
      }
      await visible('#totp-secret', 'the TOTP secret');
      secret = (await page.locator('#totp-secret').innerText()).trim();
      expect(/^[A-Z2-7]{16,}=*$/.test(secret), `#totp-secret shows ${JSON.stringify(secret)}, not base32`);
      const src = await page.locator('#totp-qr').getAttribute('src');
      expect(src && src.startsWith('data:image/svg+xml;base64,'), `the QR image's src is ${JSON.stringify(src)}`);
      const otpauth = await page.locator('#totp-qr').getAttribute('data-otpauth');
      expect(otpauth && otpauth.startsWith('otpauth://totp/') && otpauth.includes(`secret=${secret}`),
        `the QR code's URI is ${JSON.stringify(otpauth)}`);
    });

    let usedStep;
    await step('a wrong code is refused with invalid_code', async () => {
      const form = page.locator('form#totp-confirm-form');
      const right = totp(secret, totpStep(nowSeconds()));
      const wrong = right.replace(/\d/g, (d) => String((Number(d) + 5) % 10));
      await fill(form, { code: wrong });
      await form.locator('button[type="submit"]').click();
      const box = await visible('#totp-confirm-form [data-error]', 'the refusal');
      const text = (await box.innerText()).trim();
      expect(text.includes('invalid_code'), `the refusal shows ${JSON.stringify(text)}, without invalid_code`);
    });

    await step('confirm with the code computed from the secret: ten recovery codes show', async () => {
      const form = page.locator('form#totp-confirm-form');
      usedStep = totpStep(nowSeconds());
      await fill(form, { code: totp(secret, usedStep) });
      await form.locator('button[type="submit"]').click();
      await visible('#recovery-codes li', 'the recovery codes');
      const codes = await page.locator('#recovery-codes li').allInnerTexts();
      expect(codes.length === 10, `${codes.length} recovery codes show, expected 10`);
      expect(new Set(codes).size === 10, 'the recovery codes are not all different');
      await page.waitForFunction(() => document.getElementById('mfa-status')?.dataset.totp === 'on');
      await visible('#totp-on', 'the "authenticator app is on" block');
    });

    await step('rename the passkey on the security page', async () => {
      const row = page.locator('#passkeys tbody tr').first();
      await row.locator('input[name="name"]').fill('Renamed key');
      await row.locator('button[type="submit"]').click();
      await page.waitForFunction(
        () => document.querySelector('#passkeys tbody tr input[name="name"]')?.value === 'Renamed key'
          && document.querySelector('#passkeys tbody tr') !== null,
        undefined,
        { timeout: STEP_TIMEOUT_MS },
      );
      await page.reload();
      await visible('#passkeys tbody tr', 'the passkey list after a reload');
      const shown = await page.locator('#passkeys tbody tr input[name="name"]').first().inputValue();
      expect(shown === 'Renamed key', `after a reload the passkey is named ${JSON.stringify(shown)}`);
    });

    await step('sign out with #sign-out', signOut);

    await step('sign in with the password: the second step asks for a code', async () => {
      const form = await openForm('/sign-in?next=%2Fdashboard', 'sign-in-form');
      await fill(form, { email, password });
      await form.locator('button[type="submit"]').click();
      await visible('#second-step', 'the second step');
      await visible('form#mfa-code-form', 'the TOTP code form');
      await visible('form#mfa-recovery-form', 'the recovery code form');
      await visible('#mfa-passkey', 'the "Use a passkey" button (the account has one)');
      expect(new URL(page.url()).pathname === '/sign-in', `the second step left /sign-in for ${page.url()}`);
    });

    await step('give the TOTP code of a new time step: the dashboard', async () => {
      // A code is good once: wait for a step after the one that confirmed the enrolment.
      await waitForStepAfter(usedStep);
      const form = page.locator('form#mfa-code-form');
      await fill(form, { code: totp(secret, totpStep(nowSeconds())) });
      await form.locator('button[type="submit"]').click();
      await dashboardShowsTheAccount();
    });

    await step('create a workspace: the members page shows 2FA on for its owner', async () => {
      const form = page.locator('form#create-org-form');
      await fill(form, { name: 'Second Factor Inc' });
      await form.locator('button[type="submit"]').click();
      await visible('text=Second Factor Inc', 'the new workspace');
      const switchButton = page.locator('[data-switch-org]');
      if (await switchButton.count()) {
        await switchButton.first().click();
        await page.waitForLoadState('load');
      }
      await page.goto(`${base}/dashboard/members`);
      const row = await visible('#members tbody tr', 'the members table');
      const text = await row.first().innerText();
      expect(text.includes(email) && /\bon\b/.test(text), `the owner's row shows ${JSON.stringify(text)}, without 2FA on`);
    });

    await step('require two-factor authentication for the workspace', async () => {
      const toggle = await visible('#mfa-policy-required', 'the "require two-factor authentication" toggle');
      expect(!(await toggle.isChecked()), 'the policy is on already');
      await toggle.check();
      const confirmed = () =>
        page.waitForFunction(
          () =>
            /now required/.test(document.getElementById('mfa-policy-status')?.textContent ?? '') ||
            document.querySelector('#reauth-dialog[open]') !== null,
          undefined,
          { timeout: STEP_TIMEOUT_MS },
        ).catch(async () => {
          throw new Error(`the policy change did not confirm${await alertSuffix()}`);
        });
      await confirmed();
      // A step-up route: on a slow run the sign-in may be older than the step-up age.
      if (await page.locator('#reauth-dialog[open]').count()) {
        console.log('  (the sign-in is older than the step-up age: re-authenticating first)');
        await reauthenticateWithPassword();
        await confirmed();
      }
      await page.reload();
      expect(await page.locator('#mfa-policy-required').isChecked(), 'after a reload the policy shows off');
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
    const file = join(dir, `mfa-flow-failure-${Date.now()}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
    console.error(`screenshot: ${file}`);
  } catch (error) {
    console.error(`could not save a screenshot: ${firstLine(error)}`);
  }
}

try {
  await main();
  console.log(`mfa-flow: all steps passed against ${base}`);
} catch (error) {
  console.error(`mfa-flow FAILED at step "${currentStep}" against ${base}:\n  ${firstLine(error)}`);
  process.exitCode = 1;
}

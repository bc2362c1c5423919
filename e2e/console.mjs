// End-to-end test of the admin console and the user portal in Debian's Chromium, driven by
// playwright-core (never a browser download). Started by the Rust test
// crates/tether-agent/tests/console_e2e.rs, which runs tetherd, both agents and the Samba DC
// and passes what it set up in the environment; it checks AD itself afterwards.
//
// Every step saves a screenshot under E2E_OUT. Exit code 0 means every step held.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { X509Certificate, createHash } from 'node:crypto';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing environment variable ${k}`);
  return v;
};
const url = env('TETHER_URL');
const out = env('E2E_OUT');
mkdirSync(out, { recursive: true });

// tetherd serves HTTPS with a certificate of the tests' private CA: Chromium accepts exactly
// that certificate's key (by its SPKI hash), nothing else.
const spki = createHash('sha256')
  .update(new X509Certificate(readFileSync(env('E2E_TLS_CERT'))).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${spki}`],
});

let step = 0;
const shot = async (page, name) => {
  step += 1;
  await page.screenshot({ path: join(out, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
};
const nav = (page, name) => page.getByRole('navigation', { name: 'Main', exact: true }).getByRole('link', { name, exact: true });
const expectText = async (locator, text, what) => {
  await locator.filter({ hasText: text }).first().waitFor({ timeout: 15000 }).catch(() => {
    throw new Error(`${what}: "${text}" not found`);
  });
};

try {
  // --- The admin console ---
  const admin = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
  await admin.goto(`${url}/console/users`);
  // Not logged in: the login page, which refuses a wrong key.
  await admin.getByLabel('Administrator API key').fill('not-a-key');
  await admin.getByRole('button', { name: 'Log in' }).click();
  await expectText(admin.getByRole('alert'), 'unknown API key', 'a wrong key is refused');
  await shot(admin, 'console-login-refused');
  await admin.getByLabel('Administrator API key').fill(env('TETHER_API_KEY'));
  await admin.getByRole('button', { name: 'Log in' }).click();
  await admin.getByRole('heading', { name: 'Users' }).waitFor();

  // Find the imported AD user by its badge.
  const adUser = env('E2E_AD_USER');
  await admin.getByLabel('Search').fill(adUser);
  await admin.getByRole('button', { name: 'Filter' }).click();
  const row = admin.locator(`tr[data-username="${adUser}"]`);
  await row.waitFor();
  await expectText(row.locator('.badge.ad'), 'AD Integration', 'the imported user has the AD Integration badge');
  await shot(admin, 'console-users-ad-badge');
  await row.getByRole('link', { name: adUser }).click();
  await admin.getByRole('heading', { name: adUser }).waitFor();
  // Fields AD owns are read-only, with the reason.
  const first = admin.getByLabel('First name');
  if (!(await first.getAttribute('readonly') !== null)) throw new Error('a restricted field is editable');
  await expectText(admin.locator('.hint'), 'Managed by Active Directory', 'the reason shows');
  await shot(admin, 'console-user-detail');

  // Pause and resume the import agent on the domain's Domain Agents tab.
  await nav(admin, 'Active Directory').click();
  await admin.getByRole('link', { name: env('E2E_DOMAIN_DN') }).click();
  const agent = admin.locator(`tr[data-agent="${env('E2E_IMPORT_AGENT')}"]`);
  await agent.waitFor();
  await agent.getByRole('button', { name: 'Pause' }).click();
  await expectText(admin.getByRole('status'), 'paused', 'the agent was paused');
  await expectText(admin.locator(`tr[data-agent="${env('E2E_IMPORT_AGENT')}"] .agent-state`), 'paused', 'its state shows paused');
  await shot(admin, 'console-agent-paused');
  await admin.locator(`tr[data-agent="${env('E2E_IMPORT_AGENT')}"]`).getByRole('button', { name: 'Resume' }).click();
  await expectText(admin.getByRole('status'), 'resumed', 'the agent was resumed');
  // The live table (htmx, every 2 s) shows it active again once it heartbeats.
  await expectText(admin.locator(`tr[data-agent="${env('E2E_IMPORT_AGENT')}"] .agent-state`), 'active', 'the agent is active again');
  await shot(admin, 'console-agent-resumed');

  // Convert an AD-managed user to a Tether-managed one (bulk action).
  const convert = env('E2E_CONVERT_USER');
  await nav(admin, 'Users').click();
  await admin.getByLabel('Search').fill(convert);
  await admin.getByRole('button', { name: 'Filter' }).click();
  await admin.getByLabel(`Select ${convert}`).check();
  await admin.getByLabel('Action').selectOption('convert');
  await admin.getByRole('button', { name: 'Apply' }).click();
  await expectText(admin.getByRole('status'), '1 user(s) updated', 'the user was converted');
  await shot(admin, 'console-user-converted');

  await nav(admin, 'User Groups').click();
  await shot(admin, 'console-groups');
  await nav(admin, 'Sync activity').click();
  await shot(admin, 'console-activity');

  // --- The user portal ---
  const user = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await user.goto(`${url}/portal/login`);
  await user.getByLabel('Username').fill(adUser);
  await user.getByLabel('Password').fill(env('E2E_AD_PASSWORD'));
  await user.getByRole('button', { name: 'Log in' }).click();
  await user.getByRole('heading', { name: /^Hello/ }).waitFor();
  await expectText(user.locator('#policy'), 'At least', 'the password policy shows');
  await shot(user, 'portal-profile');
  await user.getByLabel('Current password').fill(env('E2E_AD_PASSWORD'));
  await user.getByLabel('New password', { exact: true }).fill(env('E2E_NEW_PASSWORD'));
  await user.getByLabel('New password again').fill(env('E2E_NEW_PASSWORD'));
  await user.getByRole('button', { name: 'Change password' }).click();
  await expectText(user.getByRole('status'), 'Password changed', 'the password was changed');
  await shot(user, 'portal-password-changed');
  console.log('e2e: every step held');
} catch (e) {
  console.error(`e2e failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

/** The demo site's one page: a shop header, a login form, logout and an in-page user switch. */

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, char => `&#${char.charCodeAt(0)};`)

export function demoPage (options: { email: string | undefined; emulatorUrl: string }): string {
  const email = options.email ?? ''
  const signedIn = email !== ''
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chat-token demo</title>
<link rel="icon" href="data:,">
<!-- The helper first: it tells HubSpot's loader (below, async) not to load the widget on its own. -->
<script src="/chat-identity.js"></script>
<script async src="${escapeHtml(options.emulatorUrl)}/__emulator/widget.js"></script>
<style>
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: #213343; background: #f5f8fa; }
  header { background: #213343; color: #fff; padding: 14px 28px; font-weight: 600; font-size: 18px; }
  header small { font-weight: 400; opacity: .7; margin-left: 8px; font-size: 13px; }
  main { max-width: 520px; margin: 28px; }
  section { background: #fff; border-radius: 10px; padding: 18px 22px; margin-bottom: 16px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
  h2 { font-size: 15px; margin: 0 0 10px; }
  input { font: inherit; padding: 6px 8px; border: 1px solid #cbd6e2; border-radius: 6px; width: 220px; }
  button { font: inherit; padding: 6px 14px; border: 0; border-radius: 6px; background: #ff7a59; color: #fff; cursor: pointer; }
  form { margin: 8px 0; }
  #events { font: 12px/1.5 ui-monospace, monospace; color: #516f90; padding-left: 26px; margin: 0; max-height: 96px; overflow: auto; }
</style>
</head>
<body>
<header>Acme Outfitters <small>chat-token demo</small></header>
<main>
  <section id="signed-out"${signedIn ? ' hidden' : ''}>
    <h2>Log in (any email, no password)</h2>
    <form id="login" method="post" action="/login">
      <input name="email" type="email" required placeholder="ada@example.com" autocomplete="email">
      <button>Log in</button>
    </form>
  </section>
  <section id="signed-in"${signedIn ? '' : ' hidden'}>
    <h2>Signed in as <span id="who">${escapeHtml(email)}</span></h2>
    <form id="logout" method="post" action="/logout"><button>Log out</button></form>
    <form id="switch">
      <input name="email" type="email" required placeholder="grace@example.com">
      <button>Switch user without reload</button>
    </form>
  </section>
  <section>
    <h2>chat-identity events</h2>
    <ol id="events" reversed></ol>
  </section>
</main>
<script>
  const events = document.getElementById('events')
  for (const name of ['identified', 'anonymous', 'error']) {
    window.addEventListener('chat-identity:' + name, event => {
      const item = document.createElement('li')
      item.textContent = name + ' ' + JSON.stringify(event.detail)
      events.prepend(item)
    })
  }

  function showUser (email) {
    document.getElementById('signed-in').hidden = email === ''
    document.getElementById('signed-out').hidden = email !== ''
    document.getElementById('who').textContent = email
  }

  ChatIdentity.start()

  document.getElementById('logout').addEventListener('submit', async event => {
    event.preventDefault()
    // Before the session ends: the helper's DELETE /chat-token still carries the session cookie.
    await ChatIdentity.logout()
    await fetch('/logout', { method: 'POST', headers: { accept: 'application/json' } })
    showUser('')
  })

  document.getElementById('switch').addEventListener('submit', async event => {
    event.preventDefault()
    const email = new FormData(event.target).get('email')
    const response = await fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ email })
    })
    if (!response.ok) return
    event.target.reset()
    showUser(email)
    // Same page, new session: identify again (the helper resets the widget for the new person).
    await ChatIdentity.start()
  })
</script>
</body>
</html>
`
}

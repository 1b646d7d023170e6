/* global window, document, fetch, URL, setTimeout, console */
// Stand-in for HubSpot's chat widget loader (js.hs-scripts.com/<portal>.js), served by the emulator at
// GET /__emulator/widget.js. It implements the documented window.HubSpotConversations surface and
// draws a small chat box saying who the visitor is, after asking the emulator whether the
// identification token is genuine and was issued for that email; anything else shows "Anonymous
// visitor", as HubSpot would treat it. Dev tooling: plain browser JavaScript, no build step.
(function () {
  'use strict'
  if (window.HubSpotConversations) return

  var emulatorOrigin = new URL(document.currentScript.src).origin
  var VISITOR_COOKIE = 'hs_emulator_utk'
  var BOX_ID = 'hs-emulator-chat'
  var listeners = {}
  var loaded = false
  var lastRefresh = 0
  /** What tests read: every load with the identity it used and the verdict, and the clear() calls. */
  var record = { loads: [], clears: [], refreshes: 0 }

  function emit (name, payload) {
    (listeners[name] || []).slice().forEach(function (fn) {
      try { fn(payload) } catch (error) { console.error(error) }
    })
  }

  function visitorCookie () {
    var match = /(?:^|;\s*)hs_emulator_utk=([^;]+)/.exec(document.cookie)
    return match ? match[1] : ''
  }

  function verify (email, token) {
    if (!email || !token) return Promise.resolve({ identified: false, note: '' })
    return fetch(emulatorOrigin + '/__emulator/tokens/' + encodeURIComponent(token), { cache: 'no-store' })
      .then(function (response) { return response.ok ? response.json() : null })
      .then(function (issued) {
        if (!issued) return { identified: false, note: 'token not issued by HubSpot' }
        if (String(issued.email).toLowerCase() !== email.toLowerCase()) return { identified: false, note: 'token issued for another email' }
        if (Date.parse(issued.expiresAt) <= Date.now()) return { identified: false, note: 'token expired' }
        return { identified: true, note: '' }
      }, function () { return { identified: false, note: 'could not check the token' } })
  }

  function draw () {
    var box = document.createElement('aside')
    box.id = BOX_ID
    box.setAttribute('role', 'complementary')
    box.setAttribute('aria-label', 'Chat')
    box.dataset.state = 'checking'
    box.style.cssText = 'position:fixed;right:16px;bottom:16px;width:260px;z-index:2147483000;font:14px/1.4 system-ui,sans-serif;' +
      'background:#fff;color:#213343;border-radius:12px;box-shadow:0 6px 24px rgba(0,0,0,.22);overflow:hidden'
    box.innerHTML = '<div style="background:#ff7a59;color:#fff;padding:10px 14px;font-weight:600">Chat with us' +
      '<span style="float:right;font-weight:400;opacity:.85;font-size:12px">HubSpot emulator</span></div>' +
      '<div data-part="who" style="padding:12px 14px 4px">Checking…</div>' +
      '<div data-part="note" style="padding:0 14px 12px;color:#516f90;font-size:12px"></div>'
    document.body.appendChild(box)
    return box
  }

  function show (box, entry, verdict) {
    entry.verdict = verdict.identified ? 'identified' : 'anonymous'
    box.dataset.state = entry.verdict
    box.dataset.email = verdict.identified ? entry.email : ''
    var who = box.querySelector('[data-part="who"]')
    var note = box.querySelector('[data-part="note"]')
    if (verdict.identified) {
      who.textContent = ''
      who.appendChild(document.createTextNode('Identified as '))
      var strong = document.createElement('strong')
      strong.textContent = entry.email
      who.appendChild(strong)
      who.appendChild(document.createTextNode(' ✓'))
      note.textContent = 'Your conversations follow you to every device.'
    } else {
      who.textContent = 'Anonymous visitor'
      note.textContent = verdict.note || 'Not logged in.'
      // HubSpot keeps anonymous visitors apart by a cookie; identified ones need none.
      if (!visitorCookie()) document.cookie = VISITOR_COOKIE + '=' + Math.random().toString(36).slice(2) + '; path=/; SameSite=Lax'
    }
    emit('widgetLoaded', { loaded: true })
  }

  function load () {
    if (loaded) return
    loaded = true
    var settings = window.hsConversationsSettings || {}
    var entry = {
      email: settings.identificationEmail || '',
      token: settings.identificationToken || '',
      verdict: 'checking'
    }
    record.loads.push(entry)
    var box = draw()
    verify(entry.email, entry.token).then(function (verdict) {
      if (box.isConnected) show(box, entry, verdict)
    })
  }

  function remove () {
    loaded = false
    var box = document.getElementById(BOX_ID)
    if (box) box.remove()
  }

  var api = {
    widget: {
      load: load,
      remove: remove,
      refresh: function () {
        // HubSpot throttles refresh to one call a second.
        if (Date.now() - lastRefresh < 1000) return
        lastRefresh = Date.now()
        record.refreshes += 1
      },
      status: function () { return { loaded: loaded } },
      open: function () { var box = document.getElementById(BOX_ID); if (box) box.dataset.open = 'true' },
      close: function () { var box = document.getElementById(BOX_ID); if (box) box.dataset.open = 'false' }
    },
    clear: function (options) {
      var reset = Boolean(options && options.resetWidget)
      record.clears.push({ resetWidget: reset })
      document.cookie = VISITOR_COOKIE + '=; path=/; max-age=0'
      if (reset) {
        var wasLoaded = loaded
        remove()
        if (wasLoaded) load()
      }
    },
    on: function (name, fn) { (listeners[name] = listeners[name] || []).push(fn) },
    off: function (name, fn) { listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn }) },
    /** Emulator only: what the widget was asked to do, for tests. */
    emulator: record
  }

  // The real SDK arrives after its loader has run; a task later keeps pages honest about that.
  setTimeout(function ready () {
    window.HubSpotConversations = api
    var settings = window.hsConversationsSettings || {}
    if (settings.loadImmediately !== false) load()
    var queue = Array.isArray(window.hsConversationsOnReady) ? window.hsConversationsOnReady : []
    queue.forEach(function (fn) {
      try { fn() } catch (error) { console.error(error) }
    })
    // Callbacks pushed from now on run at once.
    queue.push = function () {
      Array.prototype.forEach.call(arguments, function (fn) { try { fn() } catch (error) { console.error(error) } })
      return queue.length
    }
    window.hsConversationsOnReady = queue
  }, 0)
})()

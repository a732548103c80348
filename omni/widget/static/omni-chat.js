/*! omni web chat widget: one script tag, no dependencies.
 *
 * <script src="https://<stack>/widget/omni-chat.js" data-api="https://<api>"
 *         data-socket="wss://<websocket api>/<stage>" async></script>
 *
 * Optional data- attributes: data-color (#rrggbb), data-title, data-greeting,
 * data-position (right|left), data-lang (en|de; default: the browser's language).
 * Host-page API: window.omniChat.open(), .close(), .identify({account_id, email, name,
 * user_hash}) (a Promise of {session_id, verified}; a wrong user_hash is refused),
 * .session() -> {session_id} or null.
 *
 * Every text from a message is rendered with textContent: nothing a customer, an agent or
 * the bot writes is ever parsed as HTML.
 */
(function () {
  "use strict";
  if (window.omniChat && window.omniChat.version) return; // loaded twice

  var script =
    document.currentScript ||
    document.querySelector('script[src*="omni-chat"][data-api]') || { dataset: {} };
  var data = script.dataset || {};
  var API = String(data.api || "").replace(/\/+$/, "");
  var SOCKET = String(data.socket || "");
  var COLOR = /^#[0-9a-fA-F]{3,8}$/.test(data.color || "") ? data.color : "#1f6feb";
  var POSITION = data.position === "left" ? "left" : "right";
  var STORE = "omni-chat:" + API;
  var POLL_OPEN_MS = 3000;
  var POLL_IDLE_MS = 15000;
  var POLL_PUSHED_MS = 30000;
  var WAIT_REPLY_MS = 20000;

  var TEXTS = {
    en: {
      title: "Chat with us",
      greeting: "Hi! How can we help you today?",
      open: "Open chat",
      close: "Close chat",
      send: "Send",
      input: "Your message",
      placeholder: "Type a message…",
      sending: "Sending…",
      sent: "Sent",
      failed: "Not sent. Select to retry",
      you: "You",
      bot: "Assistant",
      agent: "Agent",
      now: "You are now talking to {name}",
      someone: "an agent",
      typing: "Typing…",
      offline: "You are offline. Messages are sent when you are back.",
      reconnecting: "Reconnecting…",
      sources: "Sources",
      survey: "Your answer",
      unread: "{n} unread",
      log: "Conversation",
      error: "Something went wrong. Please try again.",
    },
    de: {
      title: "Chatten Sie mit uns",
      greeting: "Hallo! Wie können wir Ihnen helfen?",
      open: "Chat öffnen",
      close: "Chat schließen",
      send: "Senden",
      input: "Ihre Nachricht",
      placeholder: "Nachricht schreiben…",
      sending: "Wird gesendet…",
      sent: "Gesendet",
      failed: "Nicht gesendet. Zum Wiederholen auswählen",
      you: "Sie",
      bot: "Assistent",
      agent: "Mitarbeiter",
      now: "Sie sprechen jetzt mit {name}",
      someone: "einem Mitarbeiter",
      typing: "Schreibt…",
      offline: "Sie sind offline. Nachrichten werden gesendet, sobald Sie wieder online sind.",
      reconnecting: "Verbindung wird wiederhergestellt…",
      sources: "Quellen",
      survey: "Ihre Antwort",
      unread: "{n} ungelesen",
      log: "Unterhaltung",
      error: "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
    },
  };
  var locale = String(data.lang || navigator.language || "en");
  var lang = locale.slice(0, 2).toLowerCase();
  var T = TEXTS[lang] || TEXTS.en;
  var SCALES = { ces: 7, csat: 5 };

  function t(key, values) {
    return T[key].replace(/\{(\w+)\}/g, function (_, name) {
      return String(values[name]);
    });
  }

  // ------------------------------------------------------------------ state
  var state = {
    session: null, // {session_id, token, expires_at, verified}
    messages: [], // in display order
    byId: {},
    open: false,
    unread: 0,
    seen: "", // timestamp of the newest message the customer has seen
    socket: null,
    socketOpen: false,
    retry: 0,
    pollTimer: 0,
    waitingSince: 0,
    pending: [], // customer messages not accepted yet
    identity: null,
  };

  function now() {
    return Math.floor(Date.now() / 1000);
  }

  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE) || "null");
      if (saved && saved.session && saved.session.expires_at > now() + 60) {
        state.session = saved.session;
        state.seen = saved.seen || "";
      } else if (saved) {
        localStorage.removeItem(STORE);
      }
    } catch (e) {
      state.session = null;
    }
  }

  function save() {
    try {
      if (state.session) {
        localStorage.setItem(STORE, JSON.stringify({ session: state.session, seen: state.seen }));
      } else {
        localStorage.removeItem(STORE);
      }
    } catch (e) {
      /* storage refused (private mode): the session lasts for this page */
    }
  }

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    var key;
    for (key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "class") node.className = attrs[key];
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), attrs[key]);
      else if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]);
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  var CSS =
    ":host{all:initial;--c:" + COLOR + ";font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24}" +
    "*{box-sizing:border-box;font:inherit}" +
    ".launcher{position:fixed;bottom:20px;" + POSITION + ":20px;width:56px;height:56px;border-radius:50%;border:0;" +
    "background:var(--c);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000}" +
    ".launcher svg{width:26px;height:26px;fill:currentColor;vertical-align:middle}" +
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;" +
    "background:#d1242f;color:#fff;font-size:12px;line-height:20px;text-align:center}" +
    ".badge[hidden],.panel[hidden],.banner[hidden],.typing[hidden]{display:none}" +
    ".panel{position:fixed;bottom:88px;" + POSITION + ":20px;width:360px;max-width:calc(100vw - 40px);height:520px;" +
    "max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;border-radius:12px;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden;z-index:2147483000}" +
    "header{display:flex;align-items:center;gap:8px;padding:12px 14px;background:var(--c);color:#fff}" +
    "header h2{flex:1;margin:0;font-size:16px;font-weight:600}" +
    ".x{background:none;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 6px}" +
    ".banner{padding:6px 14px;background:#fff8c5;color:#4d2d00;font-size:13px}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f8fa}" +
    ".msg{max-width:82%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".in{align-self:flex-end;background:var(--c);color:#fff;border-bottom-right-radius:4px}" +
    ".out{align-self:flex-start;background:#fff;border:1px solid #d0d7de;border-bottom-left-radius:4px}" +
    ".meta{display:block;margin-top:3px;font-size:11px;opacity:.75}" +
    ".failed{background:#d1242f;cursor:pointer}" +
    ".note{align-self:center;font-size:12px;color:#57606a;text-align:center}" +
    ".sources{margin:6px 0 0;padding:0;list-style:none;font-size:12px}" +
    ".sources a{color:var(--c)}" +
    ".scores{display:flex;flex-wrap:wrap;gap:4px;margin-top:6px}" +
    ".scores button{min-width:32px;padding:4px 8px;border:1px solid var(--c);border-radius:6px;background:#fff;" +
    "color:var(--c);cursor:pointer}.scores button[aria-pressed=true]{background:var(--c);color:#fff}" +
    ".scores button:disabled{cursor:default;opacity:.6}" +
    ".typing{align-self:flex-start;font-size:12px;color:#57606a;padding:0 4px}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #d0d7de;background:#fff}" +
    "textarea{flex:1;resize:none;height:40px;max-height:120px;padding:9px;border:1px solid #d0d7de;border-radius:8px}" +
    ".send{border:0;border-radius:8px;padding:0 14px;background:var(--c);color:#fff;cursor:pointer}" +
    ".send:disabled{opacity:.5;cursor:default}";

  // ------------------------------------------------------------------ the widget's DOM
  var host = el("div", { id: "omni-chat", "data-state": "closed" });
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", { text: CSS }));
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  var icon = document.createElementNS(SVG_NS, "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  var path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z");
  icon.appendChild(path);

  var badge = el("span", { class: "badge", hidden: "", "aria-hidden": "true" });
  var launcher = el(
    "button",
    { class: "launcher", type: "button", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "omni-panel" },
    [icon, badge]
  );
  var title = data.title || T.title;
  var closeButton = el("button", { class: "x", type: "button", "aria-label": T.close, text: "×" });
  var banner = el("div", { class: "banner", role: "status", hidden: "" });
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": T.log, tabindex: "0" });
  var typing = el("div", { class: "typing", hidden: "", "aria-live": "polite", text: T.typing });
  var input = el("textarea", {
    "aria-label": T.input,
    placeholder: T.placeholder,
    maxlength: "4000",
    rows: "1",
  });
  var sendButton = el("button", { class: "send", type: "submit", "aria-label": T.send, text: T.send });
  var form = el("form", {}, [input, sendButton]);
  var panel = el(
    "div",
    { class: "panel", id: "omni-panel", role: "dialog", "aria-label": title, hidden: "" },
    [el("header", {}, [el("h2", { text: title }), closeButton]), banner, log, form]
  );
  root.appendChild(panel);
  root.appendChild(launcher);

  var greeting = el("div", { class: "msg out greeting", text: data.greeting || T.greeting });
  log.appendChild(greeting);
  log.appendChild(typing);

  // ------------------------------------------------------------------ HTTP
  function request(method, path, body, token) {
    var headers = { Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(API + path, {
      method: method,
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
      mode: "cors",
    }).then(function (response) {
      setOnline(true);
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (json) {
          return { status: response.status, body: json };
        });
    });
  }

  function openSession(customer) {
    return request("POST", "/webchat/sessions", customer ? { customer: customer } : {}).then(function (r) {
      if (r.status !== 201) {
        var error = new Error((r.body && r.body.message) || "HTTP " + r.status);
        error.status = r.status;
        throw error;
      }
      if (state.session) forgetSession(); // another customer (identify): another conversation
      state.session = {
        session_id: r.body.session_id,
        token: r.body.token,
        expires_at: r.body.expires_at,
        verified: !!r.body.verified,
      };
      save();
      connect();
      return state.session;
    });
  }

  function ensureSession() {
    if (state.session && state.session.expires_at > now() + 60) return Promise.resolve(state.session);
    return openSession(state.identity);
  }

  function forgetSession() {
    if (state.socket) {
      state.socket.onclose = null;
      state.socket.close();
    }
    state.socket = null;
    state.socketOpen = false;
    state.session = null;
    state.messages.forEach(function (m) {
      if (m.node) m.node.remove();
    });
    state.messages = [];
    state.byId = {};
    state.seen = "";
    state.lastAgent = null;
    save();
  }

  // ------------------------------------------------------------------ messages
  function formatTime(timestamp) {
    var date = new Date(timestamp);
    if (isNaN(date.getTime())) return "";
    try {
      return date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return date.toISOString().slice(11, 16);
    }
  }

  function isAgent(message) {
    return /^agent:/.test(message.author || "");
  }

  function authorLabel(message) {
    if (message.direction === "inbound") return T.you;
    if (isAgent(message)) return message.author_name || T.agent;
    return T.bot;
  }

  function statusLabel(message) {
    if (message.direction !== "inbound") return "";
    return T[message.status || "sent"];
  }

  function surveyText(message) {
    // The question's score links are offered as buttons instead.
    return String(message.text || "").split(/\n\s*\n/)[0];
  }

  function render(message) {
    var inbound = message.direction === "inbound";
    var classes = "msg " + (inbound ? "in" : "out") + (message.status === "failed" ? " failed" : "");
    var meta = el("span", { class: "meta" });
    var text = el("span", { class: "text", text: message.survey ? surveyText(message) : message.text });
    var node = el("div", { class: classes, "data-id": message.message_id, "data-status": message.status || "sent" }, [
      text,
    ]);
    node.setAttribute("data-author", inbound ? "customer" : isAgent(message) ? "agent" : "bot");
    if (!inbound && message.sources && message.sources.length) node.appendChild(sourcesList(message.sources));
    if (!inbound && message.survey && SCALES[message.survey]) node.appendChild(scores(message));
    meta.textContent = [authorLabel(message), formatTime(message.timestamp), statusLabel(message)]
      .filter(Boolean)
      .join(" · ");
    node.appendChild(meta);
    if (message.status === "failed") {
      node.setAttribute("role", "button");
      node.setAttribute("tabindex", "0");
      node.addEventListener("click", function () {
        retry(message);
      });
      node.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") retry(message);
      });
    }
    return node;
  }

  function safeUrl(url) {
    try {
      var parsed = new URL(String(url));
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function sourcesList(sources) {
    var list = el("ul", { class: "sources", "aria-label": T.sources });
    sources.forEach(function (source) {
      var href = source.url && safeUrl(source.url);
      var label = String(source.title || source.article_id || "");
      var item = href
        ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow", text: label })
        : el("span", { text: label });
      list.appendChild(el("li", {}, [item]));
    });
    return el("div", {}, [el("span", { class: "meta", text: T.sources + ":" }), list]);
  }

  function scores(message) {
    var group = el("div", { class: "scores", role: "group", "aria-label": T.survey });
    var answered = state.messages.some(function (m) {
      return m.direction === "inbound" && m.timestamp > message.timestamp && /^\s*\d\s*$/.test(m.text);
    });
    for (var score = 1; score <= SCALES[message.survey]; score++) {
      group.appendChild(
        el("button", {
          type: "button",
          text: String(score),
          "data-score": String(score),
          "aria-pressed": "false",
          disabled: answered ? "" : null,
          onclick: answer(group, score),
        })
      );
    }
    return group;
  }

  function answer(group, score) {
    return function (event) {
      Array.prototype.forEach.call(group.querySelectorAll("button"), function (button) {
        button.disabled = true;
      });
      event.currentTarget.setAttribute("aria-pressed", "true");
      send(String(score));
    };
  }

  function note(text) {
    return el("div", { class: "note", role: "note", text: text });
  }

  function add(message) {
    var known = state.byId[message.message_id];
    if (known) {
      if (known.status !== "sent" && message.status === "sent") update(known, "sent");
      return false;
    }
    message = {
      message_id: String(message.message_id),
      direction: message.direction === "inbound" ? "inbound" : "outbound",
      text: String(message.text || ""),
      timestamp: String(message.timestamp || new Date().toISOString()),
      author: message.author ? String(message.author) : null,
      author_name: message.author_name ? String(message.author_name) : null,
      sources: Array.isArray(message.sources) ? message.sources : [],
      survey: message.survey || null,
      status: message.status || "sent",
    };
    state.byId[message.message_id] = message;
    state.messages.push(message);
    if (isAgent(message) && message.author !== state.lastAgent) {
      state.lastAgent = message.author;
      message.handover = note(t("now", { name: message.author_name || T.someone }));
      log.insertBefore(message.handover, typing);
    }
    message.node = render(message);
    log.insertBefore(message.node, typing);
    if (message.direction === "outbound") {
      state.waitingSince = 0;
      if (!state.open && message.timestamp > state.seen) state.unread += 1;
    }
    return true;
  }

  function update(message, status) {
    message.status = status;
    var node = render(message);
    message.node.replaceWith(node);
    message.node = node;
  }

  function merge(messages) {
    var added = false;
    messages
      .slice()
      .sort(function (a, b) {
        return a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0;
      })
      .forEach(function (message) {
        added = add(message) || added;
      });
    if (added) afterChange();
  }

  function afterChange() {
    if (state.open) markSeen();
    showBadge();
    showTyping();
    log.scrollTop = log.scrollHeight;
  }

  function markSeen() {
    state.unread = 0;
    var last = state.messages[state.messages.length - 1];
    if (last && last.timestamp > state.seen) state.seen = last.timestamp;
    save();
  }

  function showBadge() {
    badge.hidden = state.unread === 0;
    badge.textContent = String(state.unread);
    launcher.setAttribute("aria-label", state.unread ? T.open + ", " + t("unread", { n: state.unread }) : T.open);
  }

  function showTyping() {
    typing.hidden = !(state.waitingSince && Date.now() - state.waitingSince < WAIT_REPLY_MS);
    host.setAttribute("data-typing", typing.hidden ? "false" : "true");
  }

  // ------------------------------------------------------------------ sending
  function newId() {
    var bytes = new Uint8Array(8);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return (
      "w-" +
      Array.prototype.map
        .call(bytes, function (b) {
          return ("0" + b.toString(16)).slice(-2);
        })
        .join("")
    );
  }

  function send(text) {
    text = String(text || "").trim();
    if (!text) return Promise.resolve(null);
    var message = {
      message_id: newId(),
      direction: "inbound",
      text: text.slice(0, 4000),
      timestamp: new Date().toISOString(),
      author: "customer",
      status: "sending",
    };
    add(message);
    afterChange();
    return deliver(state.byId[message.message_id]);
  }

  function deliver(message) {
    if (message.status !== "sending") update(message, "sending");
    return ensureSession()
      .then(function (session) {
        var body = { message_id: message.message_id, text: message.text, sent_at: message.timestamp };
        var path = "/webchat/sessions/" + encodeURIComponent(session.session_id) + "/messages";
        return request("POST", path, body, session.token).then(function (r) {
          if (r.status === 401) {
            // The session expired or was forgotten: a new one, and the message again.
            state.session = null;
            return ensureSession().then(function (fresh) {
              return request("POST", "/webchat/sessions/" + encodeURIComponent(fresh.session_id) + "/messages", body, fresh.token);
            });
          }
          return r;
        });
      })
      .then(function (r) {
        if (r.status !== 202) throw new Error("HTTP " + r.status);
        update(message, "sent");
        state.waitingSince = Date.now();
        showTyping();
        setTimeout(showTyping, WAIT_REPLY_MS + 50);
        schedulePoll(1000);
        return message.message_id;
      })
      .catch(function (error) {
        if (error instanceof TypeError) setOnline(false);
        update(message, "failed");
        return null;
      });
  }

  function retry(message) {
    if (message.status === "failed") deliver(message);
  }

  function retryFailed() {
    state.messages.forEach(function (m) {
      if (m.status === "failed") deliver(m);
    });
  }

  // ------------------------------------------------------------------ receiving
  function poll() {
    var session = state.session;
    if (!session) return Promise.resolve();
    var path = "/webchat/sessions/" + encodeURIComponent(session.session_id) + "/messages";
    return request("GET", path, null, session.token)
      .then(function (r) {
        if (r.status === 401) {
          forgetSession();
          return;
        }
        if (r.status === 200 && r.body && Array.isArray(r.body.messages)) merge(r.body.messages);
      })
      .catch(function () {
        setOnline(false);
      });
  }

  function schedulePoll(delay) {
    clearTimeout(state.pollTimer);
    if (!state.session) return;
    if (delay === undefined) {
      delay = state.socketOpen ? POLL_PUSHED_MS : state.open ? POLL_OPEN_MS : POLL_IDLE_MS;
    }
    state.pollTimer = setTimeout(function () {
      poll().then(function () {
        schedulePoll();
      });
    }, delay);
  }

  function connect() {
    var session = state.session;
    if (!SOCKET || !session || state.socket || !window.WebSocket) return schedulePoll(0);
    var url =
      SOCKET +
      (SOCKET.indexOf("?") < 0 ? "?" : "&") +
      "session_id=" +
      encodeURIComponent(session.session_id) +
      "&token=" +
      encodeURIComponent(session.token);
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      return schedulePoll(0);
    }
    state.socket = socket;
    socket.onopen = function () {
      state.socketOpen = true;
      state.retry = 0;
      host.setAttribute("data-socket", "open");
      setBanner(null);
      poll(); // what arrived while it was closed
      schedulePoll();
    };
    socket.onmessage = function (event) {
      try {
        var payload = JSON.parse(event.data);
        if (payload && payload.type === "message" && payload.message) merge([payload.message]);
      } catch (e) {
        /* not ours */
      }
    };
    socket.onclose = function () {
      var wasOpen = state.socketOpen;
      state.socket = null;
      state.socketOpen = false;
      host.setAttribute("data-socket", "closed");
      if (!state.session) return;
      if (wasOpen && navigator.onLine !== false) setBanner(T.reconnecting);
      // Polling carries on meanwhile; the socket comes back with a growing pause (1 s .. 60 s).
      var pause = Math.min(60000, 1000 * Math.pow(2, state.retry++));
      setTimeout(connect, pause);
      schedulePoll(POLL_OPEN_MS);
    };
  }

  // ------------------------------------------------------------------ online / offline
  function setBanner(text) {
    banner.hidden = !text;
    banner.textContent = text || "";
  }

  function setOnline(online) {
    var was = host.getAttribute("data-online") !== "false";
    host.setAttribute("data-online", online ? "true" : "false");
    if (!online) setBanner(T.offline);
    else if (!was) {
      setBanner(null);
      retryFailed();
    }
  }

  window.addEventListener("offline", function () {
    setOnline(false);
  });
  window.addEventListener("online", function () {
    setOnline(true);
    if (!state.socket) connect();
    else schedulePoll(0);
  });

  // ------------------------------------------------------------------ open / close
  function open() {
    if (state.open) return;
    state.open = true;
    panel.hidden = false;
    host.setAttribute("data-state", "open");
    launcher.setAttribute("aria-expanded", "true");
    markSeen();
    showBadge();
    log.scrollTop = log.scrollHeight;
    input.focus();
    schedulePoll(0);
  }

  function close() {
    if (!state.open) return;
    state.open = false;
    panel.hidden = true;
    host.setAttribute("data-state", "closed");
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
    schedulePoll();
  }

  launcher.addEventListener("click", function () {
    if (state.open) close();
    else open();
  });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });

  // ------------------------------------------------------------------ host-page API
  function identify(customer) {
    customer = customer || {};
    var wanted = {};
    ["account_id", "email", "name", "user_hash"].forEach(function (key) {
      if (customer[key]) wanted[key] = String(customer[key]);
    });
    var previous = state.identity;
    state.identity = wanted;
    // A verified session of the same customer is kept; anything else opens a new one.
    if (
      state.session &&
      state.session.verified &&
      previous &&
      previous.account_id === wanted.account_id &&
      previous.email === wanted.email
    ) {
      return Promise.resolve({ session_id: state.session.session_id, verified: true });
    }
    return openSession(wanted).then(
      function (session) {
        return { session_id: session.session_id, verified: session.verified };
      },
      function (error) {
        state.identity = previous;
        throw error;
      }
    );
  }

  var queued = window.omniChat && Array.isArray(window.omniChat.q) ? window.omniChat.q : [];
  var api = {
    version: "1",
    open: open,
    close: close,
    identify: identify,
    session: function () {
      return state.session ? { session_id: state.session.session_id } : null;
    },
  };
  window.omniChat = api;

  function start() {
    (document.body || document.documentElement).appendChild(host);
    host.setAttribute("data-online", navigator.onLine === false ? "false" : "true");
    load();
    if (state.session) {
      poll().then(function () {
        state.unread = state.messages.filter(function (m) {
          return m.direction === "outbound" && m.timestamp > state.seen;
        }).length;
        showBadge();
        connect();
      });
    }
    queued.forEach(function (call) {
      if (call && api[call[0]]) api[call[0]].apply(api, call[1] || []);
    });
    host.setAttribute("data-ready", "true");
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();

/* omni agent console: plain JavaScript, no build step.
 *
 * Talks to the agent API with a bearer token. window.OMNI_CONSOLE (config.js) says where:
 *   apiBase          base URL of the agent API ("" = this origin)
 *   localTokenUrl    local stack only: POST {"agent_id"} -> {"token"}
 *   cognito          {region, clientId}: USER_PASSWORD_AUTH against Cognito's API
 *   queues           queue names offered for transfers
 * New assignments and messages arrive by polling every POLL_MS.
 */
(function () {
  "use strict";

  const config = window.OMNI_CONSOLE || {};
  const API = (config.apiBase || "").replace(/\/$/, "");
  const POLL_MS = config.pollMs || 2000;
  const TOKEN_KEY = "omni-console-token";
  // Channel "icons" are badges coloured per channel (style.css): no emoji font needed.
  const CHANNELS = {
    sms: "SMS",
    whatsapp: "WhatsApp",
    email: "E-mail",
    webchat: "Web chat",
    voice: "Voice",
    messenger: "Messenger",
    instagram: "Instagram",
  };

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    mine: [],
    queues: {},
    // conversation id -> message count when the agent last looked: more = new messages.
    seen: {},
    openId: null,
    conversation: null,
    customer: null,
    rendered: {},
    timer: null,
  };

  // ------------------------------------------------------------------ helpers
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** Replace an element's children, skipping empty ones (replaceChildren would print "null"). */
  function fill(el, ...children) {
    el.replaceChildren();
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function channel(name) {
    return h("span", { class: "channel channel-" + (name || "unknown") }, CHANNELS[name] || name || "unknown");
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return isNaN(date) ? String(iso) : date.toLocaleString();
  }

  function flash(text, kind) {
    const box = $("flash");
    box.textContent = text;
    box.className = "flash " + (kind || "error");
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => (box.hidden = true), 6000);
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body, headers) {
    const response = await fetch(API + path, {
      method,
      headers: Object.assign(
        { Authorization: "Bearer " + state.token },
        body === undefined ? {} : { "Content-Type": "application/json" },
        headers || {}
      ),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = { message: text };
    }
    if (response.status === 401) {
      signOut("Your session ended; sign in again.");
      throw new ApiError(401, "unauthorized");
    }
    if (!response.ok) {
      const detail = (data && (data.message || data.error)) || response.statusText;
      throw new ApiError(response.status, detail);
    }
    return data;
  }

  // ------------------------------------------------------------------ sign-in
  function showSignIn() {
    $("sign-in").hidden = false;
    $("desk").hidden = true;
    $("supervisor").hidden = true;
    $("nav").hidden = true;
    $("agent-bar").hidden = true;
    $("local-sign-in").hidden = !config.localTokenUrl;
    $("cognito-sign-in").hidden = !(config.cognito && config.cognito.clientId);
  }

  async function useToken(token) {
    state.token = token.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    try {
      state.me = await api("GET", "/agents/me");
    } catch (error) {
      if (error.status === 401) return; // signOut() said so already
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn();
      return flash("Cannot sign in: " + error.message);
    }
    $("sign-in").hidden = true;
    $("agent-bar").hidden = false;
    renderAgent();
    fillTransferQueues();
    startPolling();
    route();
  }

  // ------------------------------------------------------------------ pages (hash routes)
  /** The token's groups (``cognito:groups`` or ``groups``): only shows or hides pages; the API decides. */
  function tokenGroups() {
    try {
      const part = (state.token || "").split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      const raw = claims["cognito:groups"] || claims.groups || [];
      return Array.isArray(raw) ? raw.map(String) : String(raw).match(/[\w.-]+/g) || [];
    } catch (_) {
      return [];
    }
  }

  function isSupervisor() {
    return tokenGroups().includes("supervisors");
  }

  /** ``#supervisor``: the supervisor view; ``#conversation/<id>``: the desk with it open; else the desk. */
  function route() {
    if (!state.token || !state.me) return;
    const hash = window.location.hash || "";
    const supervisor = isSupervisor();
    $("nav").hidden = !supervisor;
    const onSupervisor = hash === "#supervisor" && supervisor;
    $("supervisor").hidden = !onSupervisor;
    $("desk").hidden = onSupervisor;
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", (link.getAttribute("href") === "#supervisor") === onSupervisor);
    }
    const view = window.OmniSupervisor;
    if (view) (onSupervisor ? view.show : view.hide)();
    const opened = hash.match(/^#conversation\/(.+)$/);
    if (opened && decodeURIComponent(opened[1]) !== state.openId) openConversation(decodeURIComponent(opened[1]));
  }

  window.addEventListener("hashchange", route);

  function signOut(message) {
    state.token = null;
    state.me = null;
    state.openId = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(state.timer);
    state.timer = null;
    showSignIn();
    if (window.OmniSupervisor) window.OmniSupervisor.hide();
    if (message) flash(message, "info");
  }

  $("local-sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { agent_id: $("local-agent-id").value.trim() };
    const name = $("local-agent-name").value.trim();
    if (name) body.name = name;
    if ($("local-supervisor").checked) body.supervisor = true;
    const response = await fetch(config.localTokenUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) return flash(data.message || "sign-in failed");
    await useToken(data.token);
  });

  $("cognito-sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    const { region, clientId } = config.cognito;
    const response = await fetch(`https://cognito-idp.${region}.amazonaws.com/`, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({
        AuthFlow: "USER_PASSWORD_AUTH",
        ClientId: clientId,
        AuthParameters: { USERNAME: $("cognito-username").value, PASSWORD: $("cognito-password").value },
      }),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok || !data.AuthenticationResult) {
      const reason = data.message || (data.ChallengeName ? "Cognito asks for " + data.ChallengeName : "sign-in failed");
      return flash(reason);
    }
    // The API's JWT authorizer checks the audience (the app client id): the ID token carries it.
    await useToken(data.AuthenticationResult.IdToken);
  });

  $("token-sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    await useToken($("pasted-token").value);
  });

  $("sign-out").addEventListener("click", () => signOut());

  // ------------------------------------------------------------------ status
  for (const button of document.querySelectorAll(".status")) {
    button.addEventListener("click", async () => {
      try {
        state.me = await api("PUT", "/agents/me/status", { status: button.dataset.status });
        renderAgent();
        await refresh();
      } catch (error) {
        flash(error.message);
      }
    });
  }

  function renderAgent() {
    const me = state.me || {};
    const skills = Object.keys(me.skills || {}).sort().join(", ");
    $("agent-name").textContent = `${me.name || me.agent_id || "?"} (${skills || "no skills"})`;
    for (const button of document.querySelectorAll(".status")) {
      button.classList.toggle("active", button.dataset.status === me.status);
      button.setAttribute("aria-pressed", String(button.dataset.status === me.status));
    }
    document.body.dataset.agentStatus = me.status || "";
  }

  function queueNames() {
    const names = new Set(Object.keys((state.me && state.me.skills) || {}));
    for (const name of config.queues || []) names.add(name);
    return [...names].sort();
  }

  function fillTransferQueues() {
    const select = $("transfer-queue");
    fill(select, h("option", { value: "" }, "queue…"), ...queueNames().map((q) => h("option", { value: q }, q)));
  }

  // ------------------------------------------------------------------ polling
  function startPolling() {
    clearInterval(state.timer);
    refresh();
    state.timer = setInterval(refresh, POLL_MS);
  }

  let refreshing = false;
  async function refresh() {
    if (!state.token || refreshing) return;
    refreshing = true;
    try {
      const [me, mine] = await Promise.all([api("GET", "/agents/me"), api("GET", "/agents/me/conversations")]);
      state.me = me;
      state.mine = (mine && mine.conversations) || [];
      const queues = await Promise.all(
        Object.keys(me.skills || {}).map((q) => api("GET", "/queues/" + encodeURIComponent(q)).catch(() => null))
      );
      state.queues = {};
      for (const queue of queues) if (queue) state.queues[queue.queue] = queue;
      renderAgent();
      renderLists();
      if (state.openId) await loadConversation(state.openId);
    } catch (error) {
      if (error.status !== 401) flash("Refresh failed: " + error.message);
    } finally {
      refreshing = false;
    }
  }

  function changed(key, value) {
    const text = JSON.stringify(value);
    if (state.rendered[key] === text) return false;
    state.rendered[key] = text;
    return true;
  }

  function conversationItem(summary, isNew) {
    const classes = ["conversation-item", "status-" + summary.status];
    if (summary.conversation_id === state.openId) classes.push("open");
    if (isNew) classes.push("new");
    return h(
      "li",
      {
        class: classes.join(" "),
        "data-conversation-id": summary.conversation_id,
        onclick: () => openConversation(summary.conversation_id),
      },
      h("div", { class: "row" },
        h("strong", {}, summary.routing ? summary.routing.intent : summary.queue || "conversation"),
        h("span", { class: "badge badge-" + summary.status }, summary.status)),
      h("div", { class: "row muted" },
        (summary.channels || []).map(channel),
        h("span", {}, `${summary.message_count || 0} msg`)),
      summary.waiting_since ? h("div", { class: "muted small" }, "waiting since " + when(summary.waiting_since)) : null
    );
  }

  function renderLists() {
    if (state.conversation && state.openId) state.seen[state.openId] = state.conversation.message_count || 0;
    const fresh = state.mine.filter(
      (c) => c.conversation_id !== state.openId && !((state.seen[c.conversation_id] ?? -1) >= (c.message_count || 0))
    );
    document.title = (fresh.length ? `(${fresh.length}) ` : "") + "omni agent console";
    if (changed("lists", [state.mine, state.queues, state.openId, state.seen])) {
      $("mine-count").textContent = state.mine.length ? String(state.mine.length) : "";
      fill($("mine"),
        ...(state.mine.length
          ? state.mine.map((c) => conversationItem(c, fresh.includes(c)))
          : [h("li", { class: "muted empty" }, "Nothing assigned to you.")])
      );
      fill($("queues"),
        ...Object.values(state.queues).sort((a, b) => a.queue.localeCompare(b.queue)).map((queue) =>
          h("div", { class: "queue", "data-queue": queue.queue },
            h("h3", {}, queue.queue,
              h("span", { class: "muted small" }, ` ${queue.waiting.length} waiting · SLA ${queue.sla_minutes} min · ${queue.agents_free} free`)),
            h("ul", { class: "conversation-list" }, queue.waiting.map((c) => conversationItem(c, false))))
        )
      );
    }
  }

  // ------------------------------------------------------------------ a conversation
  async function openConversation(id) {
    state.openId = id;
    state.conversation = null;
    state.rendered = {};
    $("reply-text").value = "";
    await loadConversation(id);
    renderLists();
  }

  async function loadConversation(id) {
    let conversation;
    try {
      conversation = await api("GET", "/conversations/" + encodeURIComponent(id));
    } catch (error) {
      if (error.status === 404) {
        state.openId = null;
        $("conversation-body").hidden = true;
        $("nothing-open").hidden = false;
      }
      throw error;
    }
    if (id !== state.openId) return;
    state.conversation = conversation;
    let customer = null;
    try {
      customer = await api("GET", "/customers/" + encodeURIComponent(conversation.customer_id));
    } catch (error) {
      customer = { customer_id: conversation.customer_id, unavailable: error.message };
    }
    state.customer = customer;
    renderConversation();
  }

  function renderConversation() {
    const c = state.conversation;
    const me = state.me ? state.me.agent_id : null;
    $("nothing-open").hidden = true;
    $("conversation-body").hidden = false;
    document.body.dataset.conversationStatus = c.status;
    $("conversation-title").textContent =
      (state.customer && state.customer.display_name) || (c.handover && c.handover.display_name) || "Customer";
    fill($("conversation-meta"),
      h("span", { class: "badge badge-" + c.status, id: "conversation-status" }, c.status),
      ` queue ${c.queue || "–"} · priority ${c.priority || 0}`,
      c.assigned_agent ? ` · agent ${c.assigned_agent}` : "",
      c.resolution ? ` · resolved: ${c.resolution}` : ""
    );
    const mineNow = c.assigned_agent === me;
    $("accept").hidden = !(c.status === "queued" || (c.status === "assigned" && mineNow));
    const working = mineNow && c.status === "active";
    $("transfer-form").hidden = !working;
    $("resolve-form").hidden = !(mineNow && c.status !== "resolved");
    $("send-reply").disabled = !working;
    const reply = c.reply_to || {};
    const replyChannel = reply.channel || c.last_channel;
    const replyLabel = CHANNELS[replyChannel] || replyChannel || "the customer's channel";
    $("reply-channel").textContent = working
      ? `goes out on ${replyLabel}`
      : c.status === "resolved" ? "resolved" : "accept the conversation to reply";
    if (changed("handover", c.handover)) renderHandover(c.handover);
    if (changed("timeline", [c.messages, c.notes, c.channel_switches, c.transitions])) renderTimeline(c);
    if (changed("customer", state.customer)) renderCustomer(state.customer);
  }

  function renderHandover(handover) {
    const box = $("handover");
    box.hidden = !handover;
    if (!handover) return fill(box);
    fill(box,
      h("h3", {}, "Hand-over from the bot"),
      h("p", { class: "summary" }, handover.summary || ""),
      handover.priority_reasons && handover.priority_reasons.length
        ? h("p", { class: "muted small" }, "priority: " + handover.priority_reasons.join(", "))
        : null,
      handover.bot_answers && handover.bot_answers.length
        ? h("div", {}, h("strong", {}, "The bot already said:"),
            h("ul", {}, handover.bot_answers.map((a) => h("li", {}, a))))
        : null,
      handover.assistant_summary
        ? h("p", { class: "assistant-summary" }, h("strong", {}, "Assistant: "), handover.assistant_summary,
            handover.handover_reason ? h("span", { class: "muted small" }, ` (${handover.handover_reason})`) : null)
        : null,
      renderSources(handover.citations)
    );
  }

  // The knowledge-base articles a bot answer came from (docs/assistant.md).
  function renderSources(citations) {
    if (!citations || !citations.length) return null;
    return h("div", { class: "sources muted small" }, "Sources: ",
      citations.map((c, i) => h("span", { class: "source", "data-article-id": c.article_id },
        (i ? ", " : "") + `${c.title} (${c.article_id})`)));
  }

  function author(message) {
    const who = message.author || (message.direction === "inbound" ? "customer" : "us");
    if (who.startsWith("agent:")) return ["agent", who.slice(6)];
    return [who, who];
  }

  function renderTimeline(c) {
    const items = [];
    for (const m of c.messages || []) items.push({ at: m.timestamp, kind: "message", m });
    for (const n of c.notes || []) items.push({ at: n.at, kind: "note", n });
    for (const s of c.channel_switches || []) items.push({ at: s.at, kind: "switch", s, after: s.message_id });
    for (const t of c.transitions || []) items.push({ at: t.at, kind: "transition", t });
    const order = { transition: 0, switch: 1, message: 2, note: 3 };
    items.sort((a, b) => String(a.at).localeCompare(String(b.at)) || order[a.kind] - order[b.kind]);
    const rows = items.map((item) => {
      if (item.kind === "message") {
        const m = item.m;
        const [role, label] = author(m);
        return h("li", { class: `entry message ${m.direction} author-${role}`, "data-message-id": m.message_id },
          h("div", { class: "entry-head" }, channel(m.channel), h("span", { class: "who" }, label),
            h("time", {}, when(m.timestamp)),
            m.direction === "outbound" && m.status ? h("span", { class: "delivery delivery-" + m.status }, m.status) : null),
          h("div", { class: "text" }, m.text || (m.attachments && m.attachments.length ? "[attachment]" : "")),
          (m.attachments || []).map((a) => h("div", { class: "muted small" }, "📎 " + (a.name || a.type || "attachment"))),
          renderSources(m.citations));
      }
      if (item.kind === "note") {
        return h("li", { class: "entry note" },
          h("div", { class: "entry-head" }, h("span", { class: "note-badge" }, "internal note"), h("span", { class: "who" }, item.n.author),
            h("time", {}, when(item.n.at))),
          h("div", { class: "text" }, item.n.text));
      }
      if (item.kind === "switch") {
        return h("li", { class: "entry switch" }, "↪ switched from ", channel(item.s.from_channel), " to ",
          channel(item.s.to_channel), h("time", {}, when(item.s.at)));
      }
      const t = item.t;
      return h("li", { class: "entry transition muted small" },
        `${t.from_status} → ${t.to_status} (${t.by}: ${t.reason})`, h("time", {}, when(t.at)));
    });
    const list = $("timeline");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    fill(list, ...rows);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function renderCustomer(customer) {
    const card = $("customer-card");
    if (!customer) return fill(card);
    if (customer.unavailable) {
      return fill(card, h("h3", {}, "Customer"), h("p", { class: "muted" }, customer.unavailable));
    }
    const tags = customer.tags || [];
    const vip = tags.some((t) => String(t).toLowerCase() === "vip") || (state.conversation.handover || {}).vip;
    const consent = Object.entries(customer.consent || {});
    const merges = customer.merges || [];
    fill(card,
      h("h3", {}, customer.display_name || "Unnamed customer", vip ? h("span", { class: "vip" }, "VIP") : null),
      h("div", { class: "muted small" }, customer.customer_id),
      tags.length ? h("div", { class: "tags" }, tags.map((t) => h("span", { class: "tag" }, t))) : null,
      h("h4", {}, "Identities"),
      h("ul", { class: "identities" },
        (customer.identities || []).map((i) =>
          h("li", { class: i.verified ? "verified" : "claimed" },
            h("span", { class: "identity-type" }, i.type), " ",
            h("code", {}, i.value), " ",
            h("span", { class: "badge " + (i.verified ? "badge-verified" : "badge-claimed") }, i.verified ? "verified" : "claimed"),
            i.possible_match
              ? h("div", { class: "muted small" }, "possible match: " + i.possible_match, " ",
                  h("button", { type: "button", class: "link", "data-merge-into": i.possible_match,
                    onclick: () => mergeInto(i.possible_match, customer.customer_id) }, "same person: merge into it"))
              : null))),
      h("h4", {}, "Consent"),
      consent.length
        ? h("ul", { class: "consent" }, consent.map(([ch, c]) =>
            h("li", {}, channel(ch), " ", h("span", { class: "badge badge-" + (c && c.status) }, (c && c.status) || "?"),
              c && c.source ? h("span", { class: "muted small" }, ` (${c.source})`) : null)))
        : h("p", { class: "muted small" }, "no choice recorded"),
      customer.language || customer.timezone
        ? h("p", { class: "muted small" }, [customer.language, customer.timezone].filter(Boolean).join(" · "))
        : null,
      contactForm(customer),
      h("p", { class: "muted small" }, `contacts: ${customer.contacts_7d || 0} in 7 days, ${customer.contacts_30d || 0} in 30 days`),
      merges.length
        ? [h("h4", {}, "Merge history"),
           h("ul", { class: "merges" }, merges.map((m) =>
             h("li", {}, `${m.role === "survivor" ? "absorbed" : "merged into"} ${m.other_customer_id} · ${when(m.at)} · ${m.cause}`,
               m.status === "unmerged" ? " (undone)" : "")))]
        : null
    );
  }

  /** One-click confirmation of a possible match: this profile is merged into the verified one. */
  function mergeInto(survivorId, otherId) {
    if (!window.confirm(`Merge ${otherId} into ${survivorId}? (It can be undone: unmerge.)`)) return;
    act(api("POST", "/customers/" + encodeURIComponent(survivorId) + "/merge", { other_customer_id: otherId }),
      () => flash("Merged into " + survivorId, "info"));
  }

  // ------------------------------------------------------------------ customer search
  /** GET /customers?identity=...: the verified owner first, then a profile that only claims it. */
  async function searchCustomers(identity) {
    const found = (await api("GET", "/customers?identity=" + encodeURIComponent(identity))).customers || [];
    fill($("customer-results"),
      found.length
        ? found.map((c) =>
            h("li", { class: "customer-result " + (c.verification || "") },
              h("strong", {}, c.display_name || "Unnamed customer"), " ",
              h("span", { class: "badge badge-" + (c.verification || "claimed") }, c.verification || ""),
              h("div", { class: "muted small" }, c.customer_id),
              c.open_conversation_id
                ? h("button", { type: "button", class: "link", onclick: () => openConversation(c.open_conversation_id) },
                    "open conversation")
                : h("div", { class: "muted small" }, "no open conversation")))
        : h("li", { class: "muted small" }, "nobody holds " + identity));
  }

  $("customer-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const identity = $("customer-search-identity").value.trim();
    if (!identity) return;
    searchCustomers(identity).catch((error) => {
      if (error.status !== 401) flash(error.message);
    });
  });

  /** The customer's contact choices (PATCH /customers/{id}): channels in order, all or the first
   * that works, time zone, quiet hours, language. An empty field clears the choice. */
  function contactForm(customer) {
    const c = customer.contact || {};
    const quiet = c.quiet_hours || {};
    const field = (name, label, value, hint) =>
      h("label", { class: "small" }, label, h("input", { name, value: value || "", placeholder: hint }));
    const mode = h("select", { name: "channel_mode" },
      h("option", { value: "first", selected: c.channel_mode !== "all" }, "first that works"),
      h("option", { value: "all", selected: c.channel_mode === "all" }, "all of them"));
    return h("form", { id: "contact-form", class: "contact-form", onsubmit: (event) => {
        event.preventDefault();
        const form = new FormData(event.target);
        const text = (name) => String(form.get(name) || "").trim();
        const channels = text("channel_preferences").split(",").map((x) => x.trim().toLowerCase()).filter(Boolean);
        const body = {
          channel_preferences: channels.length ? channels : null,
          channel_mode: text("channel_mode") || null,
          timezone: text("timezone") || null,
          language: text("language") || null,
          quiet_hours: text("quiet_start") || text("quiet_end")
            ? { start: text("quiet_start"), end: text("quiet_end") } : null,
        };
        act(api("PATCH", "/customers/" + encodeURIComponent(customer.customer_id), body),
          () => flash("Contact choices saved", "info"));
      } },
      h("h4", {}, "Contact choices"),
      c.set_at ? h("div", { class: "muted small" }, "last changed " + when(c.set_at)) : null,
      field("channel_preferences", "Channels, in order", (c.channel_preferences || []).join(", "), "sms, email"),
      h("label", { class: "small" }, "Use", mode),
      field("timezone", "Time zone", c.timezone, "Europe/Berlin"),
      field("quiet_start", "Quiet from", quiet.start, "22:00"),
      field("quiet_end", "Quiet until", quiet.end, "07:00"),
      field("language", "Language", c.language, "de"),
      h("button", { type: "submit" }, "Save choices"));
  }

  async function act(promise, done) {
    try {
      await promise;
      if (done) done();
      state.rendered = {};
      await refresh();
    } catch (error) {
      if (error.status !== 401) flash(error.message);
    }
  }

  const path = (suffix) => `/conversations/${encodeURIComponent(state.openId)}${suffix}`;

  $("accept").addEventListener("click", () => act(api("POST", path("/accept"))));

  $("reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("reply-text").value.trim();
    if (!text) return;
    act(api("POST", path("/messages"), { text }, { "Idempotency-Key": newKey() }), () => {
      $("reply-text").value = "";
      flash("Reply queued for delivery", "info");
    });
  });

  $("reply-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });

  $("add-note").addEventListener("click", () => {
    const text = $("reply-text").value.trim();
    if (!text) return flash("Write the note in the box first");
    act(api("POST", path("/notes"), { text }), () => ($("reply-text").value = ""));
  });

  $("transfer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const agent = $("transfer-agent").value.trim();
    const queue = $("transfer-queue").value;
    if (!agent && !queue) return flash("Pick a queue or type an agent id");
    act(api("POST", path("/transfer"), agent ? { agent_id: agent } : { queue }), () => ($("transfer-agent").value = ""));
  });

  $("resolve-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(api("POST", path("/resolve"), { resolution: $("resolution").value.trim() }), () => ($("resolution").value = ""));
  });

  // The supervisor view (supervisor.js) uses the same plumbing.
  window.OmniConsole = { api, h, fill, channel, when, flash, CHANNELS, ApiError, pollMs: POLL_MS };

  // ------------------------------------------------------------------ start
  if (state.token) useToken(state.token);
  else showSignIn();
})();

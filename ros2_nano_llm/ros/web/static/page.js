// Copyright 2026 The ros2_nano_llm Authors. Licensed under the Apache License, Version 2.0.
// The operator's page: one websocket to the web node; every text the model or a user wrote
// is put into the page with textContent, never parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const view = {
  control: false,
  history: [],         // entries of ~/get_history
  prompts: [],         // prompts sent, not in the history yet
  live: null,          // {turn_id, text, eos}: the reply streaming now
  calls: new Map(),    // call_id -> latest event (call or pending)
  state: 'unknown',
};
// for tests and benchmarks: when each turn's first piece was rendered, pieces per turn
window.nanoLLM = {
  firstRendered: {}, lastRendered: {}, pieces: {}, errors: [], events: 0, connected: false,
};

let ws = null;
let retryMs = 500;
let nextId = 1;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function entryItem(role, text, extra) {
  const li = el('li', role + (extra ? ' ' + extra : ''));
  li.append(el('span', 'role', role), el('span', 'text', text));
  return li;
}

function renderTranscript() {
  const list = $('transcript');
  const items = view.history.map((e) => entryItem(e.role, e.text));
  for (const text of view.prompts) items.push(entryItem('user', text, 'pending'));
  if (view.live) {
    const li = entryItem('bot', view.live.text, 'live');
    li.id = 'live';
    li.dataset.turn = view.live.turn_id;
    items.push(li);
  }
  list.replaceChildren(...items);
  list.lastElementChild && list.lastElementChild.scrollIntoView({ block: 'nearest' });
}

function onToken(event) {
  if (!view.live || view.live.turn_id !== event.turn_id) {
    view.live = { turn_id: event.turn_id, text: '', eos: false };
    renderTranscript();
  }
  view.live.text += event.text;
  view.live.eos = view.live.eos || event.eos;
  const text = document.querySelector('#live .text');
  if (text) text.textContent = view.live.text;
  if (event.text) {
    const t = event.turn_id;
    if (!(t in window.nanoLLM.firstRendered)) {
      window.nanoLLM.firstRendered[t] = performance.timeOrigin + performance.now();
    }
    window.nanoLLM.lastRendered[t] = performance.timeOrigin + performance.now();
    window.nanoLLM.pieces[t] = (window.nanoLLM.pieces[t] || 0) + 1;
  }
}

function describeCall(e) {
  let args = e.args_json || '{}';
  return `${e.name}(${args})`;
}

function renderCalls() {
  const list = $('calls');
  const items = [];
  for (const [id, e] of view.calls) {
    const kind = e.type === 'pending' ? 'pending' : (e.event === 'ended' && !e.success ? 'failed' : e.event);
    const li = el('li', kind);
    li.dataset.callId = id;
    li.append(el('span', 'call', describeCall(e)));
    let status = kind;
    if (e.type === 'pending') {
      const left = Math.max(0, Math.round(e.deadline - Date.now() / 1000));
      status = `waiting for approval (${left} s left)`;
    } else if (e.result) {
      status = `${kind}: ${e.result}`;
    }
    li.append(el('span', 'status', status));
    if (e.type === 'pending' && view.control) {
      const approve = el('button', 'approve', 'Approve');
      const deny = el('button', 'deny', 'Deny');
      approve.type = deny.type = 'button';
      approve.addEventListener('click', () => send({ op: 'decide', call_id: id, approve: true }));
      deny.addEventListener('click', () => send({ op: 'decide', call_id: id, approve: false,
                                                  reason: 'denied on the web page' }));
      li.append(approve, deny);
    }
    items.push(li);
  }
  list.replaceChildren(...items.reverse());
}

function showState(state) {
  view.state = state;
  const badge = $('node-state');
  badge.textContent = state;
  badge.className = 'badge ' + (state === 'active' ? 'ok' : 'bad');
  const banner = $('banner');
  banner.hidden = state === 'active';
  banner.textContent = state === 'unreachable'
    ? `the chat node ${$('target').textContent} is not running (or not reachable); waiting for it`
    : `the chat node is ${state}, not active: it answers no prompt now`;
  updateControls();
}

function updateControls() {
  const can = view.control && view.state === 'active' && ws && ws.readyState === WebSocket.OPEN;
  for (const id of ['send', 'stop', 'reset']) $(id).disabled = !can;
  $('prompt').disabled = !view.control;
  $('mode').textContent = view.control ? 'control' : 'read-only';
  $('mode').className = 'badge ' + (view.control ? 'ok' : '');
  $('token-form').hidden = view.control;
}

function showFigures(values) {
  const num = (v, digits) => (v === undefined || v === 'nan' ? '-' : Number(v).toFixed(digits));
  const ttft = num(values.last_ttft_ms, 0);
  $('ttft').textContent = ttft === '-' ? ttft : ttft + ' ms';
  $('rate').textContent = num(values.tokens_per_second, 1);
  $('cache').textContent = `${values.cache_tokens || 0} / ${values.context_size || 0} tokens`;
}

function setError(text) { $('error').textContent = text || ''; }

const handlers = {
  hello(e) {
    $('target').textContent = e.target;
    document.title = `nano_llm: ${e.target}`;
    $('prompt').maxLength = e.limits.max_prompt_chars;
    const token = sessionStorage.getItem('nano_llm_token');
    if (token) send({ op: 'auth', token });
  },
  auth(e) {
    view.control = e.control;
    if (!e.control) { sessionStorage.removeItem('nano_llm_token'); setError(e.error); }
    updateControls();
    renderCalls();
  },
  state(e) { showState(e.state); },
  history(e) {
    view.history = e.entries;
    view.prompts = [];
    if (view.live && view.live.eos) view.live = null;
    renderTranscript();
  },
  prompt(e) { view.prompts.push(e.text); renderTranscript(); },
  live(e) { view.live = { turn_id: e.turn_id, text: e.text, eos: e.eos }; renderTranscript(); },
  token: onToken,
  reply() {},
  result(e) {
    window.nanoLLM.lastResult = e;
    if (e.stop_reason === 'error') setError('the reply ended with an error');
  },
  call(e) { view.calls.delete(e.call_id); view.calls.set(e.call_id, e); renderCalls(); },
  pending(e) { view.calls.delete(e.call_id); view.calls.set(e.call_id, e); renderCalls(); },
  diagnostics(e) { showFigures(e.values); },
  frame(e) {
    const img = $('frame');
    img.src = `/frame.jpg?seq=${e.seq}`;
    img.hidden = false;
    $('frame-caption').textContent = `camera, ${e.width}x${e.height}`;
  },
  ack() { setError(''); },
  error(e) {
    window.nanoLLM.errors.push(e.error);
    setError(e.error);
  },
};

function send(message) {
  if (!ws || ws.readyState !== WebSocket.OPEN) { setError('not connected'); return; }
  message.id = nextId++;
  ws.send(JSON.stringify(message));
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.onopen = () => {
    retryMs = 500;
    window.nanoLLM.connected = true;
    $('connection').textContent = 'connected';
    $('connection').className = 'badge ok';
    view.calls.clear();
    view.prompts = [];
    view.live = null;
  };
  ws.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch (err) { return; }
    window.nanoLLM.events++;
    const handler = handlers[event.type];
    if (handler) handler(event);
  };
  ws.onclose = () => {
    window.nanoLLM.connected = false;
    $('connection').textContent = `disconnected: reconnecting in ${retryMs / 1000} s`;
    $('connection').className = 'badge bad';
    view.control = false;
    updateControls();
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

function start() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem('nano_llm_token', decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname);  // keep the token out of the address bar
  }
  $('prompt-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('prompt').value;
    if (!text.trim()) return;
    send({ op: 'prompt', text });
    $('prompt').value = '';
  });
  $('prompt').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); $('send').click(); }
  });
  $('stop').addEventListener('click', () => send({ op: 'stop' }));
  $('reset').addEventListener('click', () => send({ op: 'reset' }));
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem('nano_llm_token', $('token').value);
    send({ op: 'auth', token: $('token').value });
    $('token').value = '';
  });
  setInterval(() => { if ([...view.calls.values()].some((e) => e.type === 'pending')) renderCalls(); }, 1000);
  updateControls();
  connect();
}

start();

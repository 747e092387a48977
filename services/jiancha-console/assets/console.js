// jiancha console: the live board's stream (server-sent events; the browser resumes from
// the last event id on its own), today's counts, at most 200 cards on screen so that a
// board open all day keeps its memory flat, and the opt-in red-card sound and notice.
// Cards are built with textContent only: alert text is data, never markup.
'use strict';
// Attachments: the SHA-256, size and type of each chosen file, computed here, go in the
// form's hidden `attachments` field; the file's content is not sent.
for (const input of document.querySelectorAll('input.attach')) {
  const field = input.form.querySelector('input[name=attachments]');
  input.addEventListener('change', async () => {
    const list = [];
    for (const file of input.files) {
      const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
      const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
      list.push({ file_name: file.name, media_type: file.type || 'application/octet-stream', size_bytes: file.size, sha256: hex });
    }
    field.value = JSON.stringify(list);
  });
}
(function () {
  const board = document.getElementById('board');
  if (!board) return;
  const MAX_CARDS = 200;
  const en = board.dataset.lang === 'en';
  const status = document.getElementById('live-status');
  const template = document.getElementById('card-template');
  const byDept = document.getElementById('by-dept');
  const alarm = document.getElementById('red-alarm');
  const levels = ['WARNING', 'YELLOW', 'RED'];
  const cards = new Map();
  let today = '';
  let counts = { WARNING: 0, YELLOW: 0, RED: 0 };
  let depts = new Map();
  let live = false;
  let received = 0;

  alarm.checked = localStorage.getItem('jiancha.redAlarm') === '1';
  alarm.addEventListener('change', () => {
    localStorage.setItem('jiancha.redAlarm', alarm.checked ? '1' : '0');
    if (alarm.checked && 'Notification' in window && Notification.permission === 'default') Notification.requestPermission();
  });

  function beep() {
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.frequency.value = 880;
      g.gain.value = 0.15;
      o.connect(g); g.connect(ctx.destination);
      o.start(); o.stop(ctx.currentTime + 0.4);
      o.onended = () => ctx.close();
    } catch (e) { /* no audio device */ }
  }

  function renderCounts() {
    for (const l of levels) document.getElementById('n-' + l).textContent = counts[l];
    document.getElementById('today').textContent = today;
    const rows = [...depts.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    byDept.replaceChildren(...rows.map(([d, c]) => {
      const tr = document.createElement('tr');
      for (const v of [d, c.WARNING, c.YELLOW, c.RED]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  let countsPending = false;
  function scheduleCounts() {
    if (countsPending) return;
    countsPending = true;
    setTimeout(() => { countsPending = false; renderCounts(); }, 250);
  }

  function count(a, delta) {
    if (a.day !== today || !levels.includes(a.level)) return;
    counts[a.level] = Math.max(0, counts[a.level] + delta);
    const d = a.department || '—';
    if (!depts.has(d)) depts.set(d, { WARNING: 0, YELLOW: 0, RED: 0 });
    const c = depts.get(d);
    c[a.level] = Math.max(0, c[a.level] + delta);
    scheduleCounts();
  }

  function card(a) {
    const node = template.content.firstElementChild.cloneNode(true);
    node.classList.add('lv-' + a.level.toLowerCase());
    if (a.retracted) node.classList.add('retracted');
    node.dataset.alertId = a.id;
    node.dataset.level = a.level;
    const badge = node.querySelector('.badge');
    badge.textContent = a.level_label;
    badge.classList.add('lv-' + a.level.toLowerCase());
    node.querySelector('.kind').textContent = a.kind;
    node.querySelector('.state').textContent = a.state;
    const item = node.querySelector('.item');
    if (a.item) {
      item.textContent = a.item;
      item.href = '/items/' + encodeURIComponent(a.department || '_') + '/' + encodeURIComponent(a.item);
    }
    node.querySelector('.dept').textContent = [a.department, a.service].filter(Boolean).join(' · ');
    node.querySelector('.when').textContent = a.when;
    node.querySelector('.msg').textContent = a.message;
    const ol = node.querySelector('.derivation');
    for (const line of a.derivation) {
      const li = document.createElement('li');
      li.textContent = line;
      ol.appendChild(li);
    }
    return node;
  }

  function onAlert(a) {
    received += 1;
    const old = cards.get(a.id);
    if (a.retracted) {
      count(a, -1);
    } else if (!old || old.classList.contains('retracted')) {
      count(a, +1);
    }
    if (old) { old.remove(); cards.delete(a.id); }
    const node = card(a);
    board.prepend(node);
    cards.set(a.id, node);
    while (cards.size > MAX_CARDS) {
      const [id, last] = cards.entries().next().value;
      last.remove();
      cards.delete(id);
    }
    if (live && !a.retracted && a.level === 'RED' && alarm.checked) {
      beep();
      if ('Notification' in window && Notification.permission === 'granted') {
        new Notification((en ? 'Red card: ' : '红牌：') + a.kind, { body: a.message, tag: a.id });
      }
    }
  }

  const source = new EventSource(board.dataset.stream);
  source.addEventListener('hello', (e) => {
    if (today && today !== e.data) { counts = { WARNING: 0, YELLOW: 0, RED: 0 }; depts = new Map(); }
    today = e.data;
    renderCounts();
  });
  source.addEventListener('alert', (e) => {
    onAlert(JSON.parse(e.data));
    status.textContent = (en ? 'Live · updates received: ' : '实时 · 已接收更新 ') + received;
  });
  source.addEventListener('open', () => {
    status.textContent = en ? 'Live' : '实时连接已建立';
    // Sound and notices only for what arrives after the backlog has been read.
    setTimeout(() => { live = true; }, 3000);
  });
  source.addEventListener('error', () => {
    status.textContent = en ? 'Reconnecting…' : '连接中断，正在重连…';
  });
  board.dataset.ready = '1';
})();

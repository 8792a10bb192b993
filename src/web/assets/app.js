// The dashboard: starts and stops fan-outs through /api, follows the run
// over server-sent events (/api/events), and shows the scorecard.
'use strict';

const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const ms = (s) => (s === null || s === undefined ? '-' : (s * 1000).toFixed(1) + ' ms');
const pct = (v) => (v === null || v === undefined ? '-' : (v * 100).toFixed(1) + '%');
const num = (v, d) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));

function message(text, ok) {
  const el = $('#message');
  el.textContent = text;
  el.className = ok ? 'ok' : '';
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.status + ' ' + response.statusText);
  return data;
}

function runParams(form) {
  const f = new FormData(form);
  const params = {
    concurrency: Number(f.get('concurrency')),
    policy: f.get('policy'),
    split: f.get('split'),
    seed: Number(f.get('seed')),
  };
  const text = (name) => { const v = String(f.get(name) || '').trim(); if (v) params[name] = v; };
  text('scenario_mix');
  text('trace_url_template');
  if (f.get('incidents')) params.incidents = Number(f.get('incidents'));
  if (f.get('continuous')) {
    params.continuous = true;
    params.arrival_rate = Number(f.get('arrival_rate'));
    params.duration_s = Number(f.get('duration_s'));
    params.queue_limit = Number(f.get('queue_limit'));
    if (!f.get('incidents')) delete params.incidents;
  }
  return params;
}

$('#start').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const { run_id } = await api('POST', '/api/runs', runParams(event.target));
    message('started ' + run_id, true);
  } catch (e) {
    message(e.message, false);
  }
});
for (const [id, mode] of [['#drain-btn', 'drain'], ['#abort-btn', 'abort']]) {
  $(id).addEventListener('click', async () => {
    try {
      await api('POST', '/api/runs/stop', { mode });
      message(mode + ' requested', true);
    } catch (e) {
      message(e.message, false);
    }
  });
}
$('#scorecard-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const f = new FormData(event.target);
  try {
    await api('POST', '/api/scorecard', { split: f.get('split'), repeats: Number(f.get('repeats')) });
    $('#scorecard-state').textContent = 'running…';
  } catch (e) {
    $('#scorecard-state').textContent = e.message;
  }
});

function kpis(status) {
  const s = status.snapshot;
  const r = s.report;
  const items = [
    ['generated', r.generated], ['completed', r.completed], ['fixed', r.fixed], ['failed', r.failed],
    ['dropped', r.dropped], ['fix rate', pct(r.fix_rate)], ['mean steps', num(r.mean_steps, 2)],
    ['latency p50', ms(r.latency_s.p50)], ['latency p95', ms(r.latency_s.p95)],
    ['service p95', ms(r.service_s.p95)], ['throughput', num(r.throughput_per_s, 1) + '/s'],
    ['fallback', r.fallback_used], ['confirmations', r.confirmations_required], ['refused', r.refused_actions],
  ];
  $('#kpis').innerHTML = items.map(([k, v]) => `<div class="kpi" data-kpi="${esc(k)}"><b>${esc(v)}</b><span>${esc(k)}</span></div>`).join('');
  const total = Math.max(s.planned, r.generated, 1);
  const done = r.completed + r.dropped + r.cancelled + r.aborted;
  $('#progress-bar').style.width = Math.min(100, (100 * done) / total) + '%';
  $('#run-id').textContent = r.run_id ? r.run_id + ' · ' + r.mode + ' · ' + r.policy : '';
  const state = $('#runstate');
  state.textContent = status.active ? s.state : (r.run_id ? 'done' : 'idle');
  state.className = 'pill' + (status.active ? ' run' : '');
  $('#workers tbody').innerHTML = s.workers.map((w, i) => w
    ? `<tr><td>w${i}</td><td>${esc(w.incident)}</td><td>${esc(w.severity)}</td><td>${num(s.elapsed_s - w.started_s, 1)} s</td></tr>`
    : `<tr><td>w${i}</td><td colspan="3">idle</td></tr>`).join('');
  $('#queue-len').textContent = '(' + s.queue_len + ' waiting)';
  $('#queue tbody').innerHTML = s.queue.map((a) =>
    `<tr><td>${esc(a.scenario)} #${a.seq}</td><td>${esc(a.severity)}</td><td>${num(a.at_s, 2)} s</td></tr>`).join('');
  $('#recent tbody').innerHTML = s.recent.map((c) => `<tr class="completion">
    <td>${esc(c.incident)}</td><td>${esc(c.severity)}</td><td class="${esc(c.phase)}">${esc(c.phase)}</td>
    <td>${c.steps}</td><td>${esc(c.max_risk || '-')}</td><td>${ms(c.wait_s)}</td><td>${ms(c.service_s)}</td>
    <td>${c.trace_url ? `<a href="${esc(c.trace_url)}">${esc(c.trace_key)}</a>` : esc(c.trace_key)}</td></tr>`).join('');
}

function scorecardTable(card) {
  const rows = [];
  for (const a of card.approaches) {
    if (a.missing) {
      rows.push(`<tr><td>${esc(a.name)}</td><td colspan="9" class="missing">${esc(a.missing)}</td></tr>`);
      continue;
    }
    for (const c of [a.all, ...a.scenarios]) {
      rows.push(`<tr><td>${c.scenario === 'all' ? esc(a.name) : ''}</td><td>${esc(c.scenario)}</td><td>${c.runs}</td>
        <td>${pct(c.fix_rate)}</td><td>${num(c.mean_steps, 2)}</td><td>${num(c.shortest, 2)}</td><td>${num(c.score, 2)}</td>
        <td>${ms(c.time_to_resolve_s.p50)}</td><td>${ms(c.time_to_resolve_s.p95)}</td><td>${esc(c.max_risk || '-')}</td></tr>`);
    }
  }
  return `<p><small>score: ${esc(card.score_definition)}</small></p><table><thead><tr><th>approach</th><th>scenario</th><th>runs</th>
    <th>fix rate</th><th>steps</th><th>shortest</th><th>score</th><th>p50 ttr</th><th>p95 ttr</th><th>max risk</th></tr></thead>
    <tbody>${rows.join('')}</tbody></table>`;
}

let shownCard = -1;
async function refreshScorecard(info) {
  $('#scorecard-state').textContent = info.running ? 'running…' : '';
  if (info.running || info.version === shownCard) return;
  const status = await api('GET', '/api/scorecard');
  shownCard = info.version;
  if (!status.scorecard) return;
  $('#scorecard').innerHTML = scorecardTable(status.scorecard);
  const plot = $('#plot');
  if (status.plot_error) {
    plot.hidden = true;
    $('#scorecard-state').textContent = status.plot_error;
  } else {
    plot.src = '/api/scorecard/plot.svg?v=' + info.version;
    plot.hidden = false;
  }
}

let lastSeq = -1;
function appendLog(lines) {
  // A reconnected stream starts over: skip what is shown already.
  lines = lines.filter((line) => line.seq > lastSeq);
  if (!lines.length) return;
  const log = $('#log');
  if (lastSeq < 0) log.textContent = '';
  lastSeq = lines[lines.length - 1].seq;
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  for (const line of lines) {
    const time = new Date(line.at * 1000).toLocaleTimeString();
    log.append(`${time}  ${line.text}\n`);
  }
  if (stick) log.scrollTop = log.scrollHeight;
}

const events = new EventSource('/api/events');
events.addEventListener('open', () => { $('#conn').textContent = 'live'; $('#conn').className = 'pill ok'; });
events.addEventListener('error', () => { $('#conn').textContent = 'reconnecting…'; $('#conn').className = 'pill bad'; });
events.addEventListener('state', (event) => {
  const data = JSON.parse(event.data);
  kpis(data.status);
  appendLog(data.log);
  refreshScorecard(data.scorecard).catch((e) => { $('#scorecard-state').textContent = e.message; });
});

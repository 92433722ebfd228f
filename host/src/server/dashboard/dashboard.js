// Plots the resource monitor's samples from /v1/admin/metrics.json.
//
// The admin key comes from the URL's fragment (#key=KEY), which the browser
// never sends to the server. Names of tenants, plugins and functions are
// set as text and attributes only, never as HTML, since tenants choose them.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const WIDTH = 560;
  const HEIGHT = 200;
  const MARGIN = { left: 58, right: 12, top: 10, bottom: 24 };
  const COLORS = ['#2f6fdb', '#d9572b', '#2a9d5c', '#9b4fd1', '#c79a12', '#1a9bb0', '#d23c77', '#6b7280'];
  const MIN_POLL_MS = 500;

  const status = document.getElementById('status');
  const key = new URLSearchParams(location.hash.slice(1)).get('key');
  let pollMs = 5000;

  function showError(message) {
    status.textContent = message;
    status.className = 'error';
  }

  function element(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [attribute, value] of Object.entries(attributes)) {
      node.setAttribute(attribute, String(value));
    }
    parent.appendChild(node);
    return node;
  }

  function formatBytes(value) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let unit = 0;
    while (Math.abs(value) >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? value.toFixed(0) : value.toFixed(1)) + ' ' + units[unit];
  }

  function formatNumber(value) {
    if (Math.abs(value) >= 100 || Number.isInteger(value)) {
      return value.toFixed(0);
    }
    return value.toFixed(Math.abs(value) >= 10 ? 1 : 2);
  }

  function formatTime(ms) {
    return new Date(ms).toLocaleTimeString();
  }

  // Draws `series` ([{name, points: [[at_ms, value or null]]}]) into the SVG
  // `plotId` over the time range `range`, and lists the names under it.
  function plot(plotId, legendId, series, range, format) {
    const svg = document.getElementById(plotId);
    const legend = document.getElementById(legendId);
    svg.replaceChildren();
    legend.replaceChildren();
    const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
    if (values.length === 0) {
      element('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'empty' }, svg)
        .textContent = 'no data yet';
      return;
    }
    const top = Math.max(...values) * 1.1 || 1;
    const innerWidth = WIDTH - MARGIN.left - MARGIN.right;
    const innerHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
    const span = Math.max(range[1] - range[0], 1);
    const x = (at) => MARGIN.left + ((at - range[0]) / span) * innerWidth;
    const y = (value) => MARGIN.top + innerHeight - (value / top) * innerHeight;

    for (let step = 0; step <= 4; step += 1) {
      const value = (top * step) / 4;
      element('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value), class: 'grid' }, svg);
      element('text', { x: MARGIN.left - 6, y: y(value) + 4, 'text-anchor': 'end', class: 'axis' }, svg)
        .textContent = format(value);
    }
    element('text', { x: MARGIN.left, y: HEIGHT - 6, class: 'axis' }, svg).textContent = formatTime(range[0]);
    element('text', { x: WIDTH - MARGIN.right, y: HEIGHT - 6, 'text-anchor': 'end', class: 'axis' }, svg)
      .textContent = formatTime(range[1]);

    series.forEach((s, index) => {
      const color = COLORS[index % COLORS.length];
      // A null value breaks the line, so an interval without calls shows as
      // a gap rather than as a slope to the next call.
      let path = '';
      let drawing = false;
      for (const [at, value] of s.points) {
        if (value === null) {
          drawing = false;
          continue;
        }
        path += (drawing ? ' L' : ' M') + x(at).toFixed(1) + ' ' + y(value).toFixed(1);
        drawing = true;
      }
      const line = element('path', { d: path.trim(), stroke: color, class: 'series', 'data-series': s.name }, svg);
      const last = s.points.filter((p) => p[1] !== null).pop();
      if (last && s.points.filter((p) => p[1] !== null).length === 1) {
        // A lone point has no line to show, so it gets a dot.
        element('circle', { cx: x(last[0]), cy: y(last[1]), r: 3, fill: color, 'data-series': s.name }, svg);
      }
      line.appendChild(document.createElementNS(SVG, 'title')).textContent = s.name;
      const item = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.name + (last ? ' (' + format(last[1]) + ')' : '')));
      legend.appendChild(item);
    });
  }

  // Returns one series per name that `entries(sample)` yields, with a null
  // point for each sample where the name is missing.
  function seriesBy(samples, entries) {
    const names = new Map();
    samples.forEach((sample, index) => {
      for (const [name, value] of entries(sample)) {
        if (!names.has(name)) {
          names.set(name, samples.map((s) => [s.at_ms, null]));
        }
        names.get(name)[index][1] = value;
      }
    });
    return [...names.entries()].sort().map(([name, points]) => ({ name, points }));
  }

  function functionName(f) {
    return f.tenant + '/' + f.plugin + '@' + f.version + '.' + f.function;
  }

  function render(report) {
    const samples = report.samples;
    const range = samples.length > 0
      ? [samples[0].at_ms, samples[samples.length - 1].at_ms]
      : [Date.now() - report.sample_interval_ms, Date.now()];

    // A p95 past the histogram's last bucket has no bound; it is drawn at
    // the last bound, 10 s.
    plot('plot-latency', 'legend-latency', seriesBy(samples, (s) => s.functions.map(
      (f) => [functionName(f), (f.p95_us === null ? 10000000 : f.p95_us) / 1000])), range, formatNumber);
    plot('plot-calls', 'legend-calls', seriesBy(samples, (s) => s.functions.map(
      (f) => [functionName(f), f.calls])), range, formatNumber);
    plot('plot-pools', 'legend-pools', seriesBy(samples, (s) => s.pools.map(
      (p) => [p.tenant + '/' + p.pool, p.wait_us / 1000])), range, formatNumber);
    plot('plot-queue', 'legend-queue', seriesBy(samples, (s) => [['queued calls', s.slot_queue_depth]]),
      range, formatNumber);
    plot('plot-host', 'legend-host', seriesBy(samples, (s) => s.host === null ? [] : [
      ['cpu', s.host.cpu_percent],
      ['memory', (s.host.memory_used_bytes * 100) / s.host.memory_total_bytes],
    ]), range, formatNumber);
    plot('plot-io', 'legend-io', seriesBy(samples, (s) => s.host === null ? [] : [
      ['disk read', s.host.disk_read_bytes_per_second],
      ['disk written', s.host.disk_written_bytes_per_second],
      ['network received', s.host.network_received_bytes_per_second],
      ['network sent', s.host.network_sent_bytes_per_second],
    ]), range, formatBytes);

    const counts = Object.entries(report.alert_counts).map(([alert, count]) => alert + ' ' + count);
    document.getElementById('alert-counts').textContent = 'Raised since the server started: ' + counts.join(', ');
    const body = document.querySelector('#alerts tbody');
    body.replaceChildren();
    for (const alert of [...report.alerts].reverse()) {
      const row = body.insertRow();
      for (const text of [formatTime(alert.at_ms), alert.alert, alert.subject, alert.message]) {
        row.insertCell().textContent = text;
      }
    }
    if (report.alerts.length === 0) {
      const cell = body.insertRow().insertCell();
      cell.colSpan = 4;
      cell.textContent = 'No alerts.';
    }
  }

  async function refresh() {
    try {
      const response = await fetch('/v1/admin/metrics.json', {
        headers: { Authorization: 'Bearer ' + key },
        cache: 'no-store',
      });
      const body = await response.json();
      if (!response.ok) {
        showError(body.error ? body.error.message : 'the server answered ' + response.status);
        return;
      }
      render(body);
      pollMs = Math.max(body.sample_interval_ms, MIN_POLL_MS);
      status.textContent = body.samples.length + ' samples, one every ' +
        body.sample_interval_ms / 1000 + ' s; updated ' + new Date().toLocaleTimeString();
      status.className = '';
    } catch (error) {
      showError('cannot reach the server: ' + error);
    } finally {
      setTimeout(refresh, pollMs);
    }
  }

  if (!key) {
    showError('No admin key: open this page as /dashboard#key=KEY, with the key that ' +
      '`sandtable admin rotate-key` prints.');
    return;
  }
  refresh();
})();

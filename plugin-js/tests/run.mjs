// Browser tests of hls-streaming.js: Debian's chromium (headless, driven by playwright-core) opens
// a page that imitates Jellyfin's player, served here from another origin than liveup's, and the
// real liveup daemon (started by tests/browser.rs) upscales the film it plays.
//
// Environment (set by tests/browser.rs):
//   LIVEUP_URL        the daemon, e.g. http://127.0.0.1:40123
//   LIVEUP_ITEMS      JSON {"<jellyfin item id>": "<path of the original film>", …}
//   LIVEUP_ITEM_LIVE  an item whose job is already upscaling (a few seconds ready)
//   LIVEUP_ITEM_FRESH an item liveup has not seen (for the give-up test)
//   LIVEUP_ITEM_SLOW  a larger film the model makes slower than it plays, for…
//   LIVEUP_FALLBACK_URL a second daemon whose live_fallback_model is lanczos
//   LIVEUP_WIDTHS     JSON {"original": 96, "upscaled": 192}
//   LIVEUP_TEST_OUT   folder for screenshots, results.json and the browser's console
//   CHROMIUM          the browser (default /usr/bin/chromium)
// Prints one line per test and "N passed, N failed"; exits 1 when any failed.

import { execFileSync } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { createReadStream, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/browser.rs sets it)`);
  return value;
};
const LIVEUP = env('LIVEUP_URL').replace(/\/+$/, '');
const ITEMS = JSON.parse(env('LIVEUP_ITEMS'));
const LIVE = env('LIVEUP_ITEM_LIVE');
const FRESH = env('LIVEUP_ITEM_FRESH');
const SLOW = env('LIVEUP_ITEM_SLOW');
const FALLBACK = env('LIVEUP_FALLBACK_URL').replace(/\/+$/, '');
const WIDTHS = JSON.parse(env('LIVEUP_WIDTHS'));
const OUT = env('LIVEUP_TEST_OUT');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ONLY = process.env.LIVEUP_TEST_ONLY || '';
mkdirSync(OUT, { recursive: true });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the stand-in for Jellyfin's web client ---------------------------------------------------

// It imitates what jellyfin-web (10.10, 10.11, master) does around its <video>:
// - src/plugins/htmlVideoPlayer/plugin.js requireHlsPlayer: window.Hls is jellyfin-web's own
//   hls.js (1.6.13, the version 10.11's package.json pins, served by the stand-in and marked);
// - a transcode is HLS (…/master.m3u8): plugin.js setSrcWithHlsJs plays it through that hls.js
//   (startPosition, manifestLoadingTimeOut 20000, maxBufferLength 30: a blob: src) where
//   htmlMediaHelper.js enableHlsJsPlayer says so, else natively (src is the .m3u8 URL, as on
//   Safari, or Chromium ≥ 141 with 10.10). The stand-in's transcode is a real HLS made by ffmpeg;
// - htmlMediaHelper.js onSuccessfulPlay: once play() resolves, an `error` listener on the element;
//   plugin.js onError ignores codes 0 and 1 and sends 2, 3 and 4 to playbackmanager's
//   onPlaybackError, which retries with a transcode (changeStream, EnableDirectPlay: false)
//   from the position where it broke;
// - plugin.js setCurrentSrc: a track or quality change writes a new src;
// - plugin.js onEnded → htmlMediaHelper.js onEndedInternal: removes the error listener, resetSrc;
// - ApiClient.reportPlaybackStart / reportPlaybackProgress with PlayMethod and PositionTicks
//   (from element.currentTime).
// Every write of the element's src is logged with who wrote it.
const page = ({ item, config, start, method, native, reports, prefix }) => `<!doctype html>
<html><head><meta charset="utf-8"><title>Jellyfin (stand-in)</title>
<style>
  body { margin: 0; background: #101010; color: #ddd; font: 14px sans-serif; }
  .videoPlayerContainer { position: relative; width: 640px; height: 360px; background: #000; }
  video.htmlvideoplayer { width: 100%; height: 100%; object-fit: contain; }
  .videoOsdBottom { padding: .5em 1em; display: flex; gap: 2em; }
</style>
<script src="/web/hls.js"></script>
<script>window.Hls.__jellyfinWeb = true; window.__jellyfinHls = window.Hls;</script>
<script>window.LIVEUP_CONFIG = ${JSON.stringify(config)};</script>
<script src="${prefix || LIVEUP}/plugin/hls-streaming.js"></script>
</head><body>
<div id="reactRoot"><div class="mainAnimatedPages skinBody">
  <div id="videoOsdPage" class="page libraryPage" data-type="video-osd">
    <div class="videoPlayerContainer">
      <video class="htmlvideoplayer moveUpSubtitles" preload="metadata" playsinline muted></video>
    </div>
    <div class="videoOsdBottom"><span class="osdPositionText">0:00</span><span class="source"></span>
      <span class="state"></span></div>
  </div>
</div></div>
<script>
  // What the test reads: every liveup state with the player's own numbers at that moment.
  window.__states = [];
  const video = document.querySelector('video.htmlvideoplayer');
  window.addEventListener('liveup:state', (event) => {
    window.__states.push(Object.assign({}, event.detail, {
      at: performance.now(), currentTime: video.currentTime, paused: video.paused, readyState: video.readyState,
      src: video.currentSrc, videoWidth: video.videoWidth,
    }));
    document.querySelector('.state').textContent = 'liveup: ' + event.detail.state;
  });
  video.addEventListener('timeupdate', () => {
    document.querySelector('.osdPositionText').textContent = video.currentTime.toFixed(2) + ' s';
    document.querySelector('.source').textContent =
      (video.currentSrc.startsWith('blob:') ? 'upscaled ' : 'original ') + video.videoWidth + '×' + video.videoHeight;
  });
  // Who writes the element's src, and what.
  window.__srcWrites = [];
  let writer = 'liveup';
  const srcProperty = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'src');
  Object.defineProperty(video, 'src', {
    configurable: true,
    get() { return srcProperty.get.call(this); },
    set(value) {
      window.__srcWrites.push({ by: writer, src: String(value), at: performance.now() });
      srcProperty.set.call(this, value);
    },
  });
  const jellyfinWrites = (src) => { writer = 'jellyfin'; try { video.src = src; } finally { writer = 'liveup'; } };

  const PLAY_METHOD = ${JSON.stringify(method)};
  const NATIVE_HLS = ${JSON.stringify(native)};
  window.__reports = [];
  if (${JSON.stringify(reports)}) window.ApiClient = {
    reportPlaybackStart(options) { window.__reports.push(Object.assign({ kind: 'start' }, options)); return Promise.resolve(); },
    reportPlaybackProgress(options) { window.__reports.push(Object.assign({ kind: 'progress' }, options)); return Promise.resolve(); },
  };
  let itemId = null;
  let source = null;
  const report = (kind) => window.ApiClient && window.ApiClient[kind]({
    ItemId: itemId, MediaSourceId: source.Id, PlayMethod: PLAY_METHOD, PositionTicks: Math.round(video.currentTime * 1e7),
  });

  window.__jellyfinErrors = [];
  window.__jellyfinEnded = 0;
  function onError() {
    const code = video.error ? video.error.code || 0 : 0;
    if (code === 0 || code === 1) return;
    window.__jellyfinErrors.push(code);
    // onPlaybackError → changeStream(EnableDirectPlay: false): a transcode from where it was.
    playTranscode(video.currentTime).then(() => video.play()).catch(() => {});
  }
  let jellyfinHls = null;
  const transcodeUrl = (at) => '/videos/' + itemId + '/master.m3u8?MediaSourceId=' + source.Id + '&PlaySessionId=' +
    playSession + '&VideoCodec=h264&AudioCodec=aac&StartTimeTicks=' + Math.round(at * 1e7);
  // plugin.js setSrcWithHlsJs, or the browser's own HLS where jellyfin-web leaves it to it.
  function playTranscode(at) {
    if (jellyfinHls) jellyfinHls.destroy();
    jellyfinHls = null;
    if (NATIVE_HLS) {
      jellyfinWrites(transcodeUrl(at));
      video.currentTime = at;
      return Promise.resolve();
    }
    const hls = new window.Hls({ startPosition: at, manifestLoadingTimeOut: 20000, maxBufferLength: 30, maxMaxBufferLength: 30 });
    jellyfinHls = hls;
    hls.loadSource(transcodeUrl(at));
    writer = 'jellyfin';
    try { hls.attachMedia(video); } finally { writer = 'liveup'; }
    return new Promise((resolve) => hls.once(window.Hls.Events.MANIFEST_PARSED, resolve));
  }
  video.addEventListener('ended', () => {
    window.__jellyfinEnded += 1;
    window.__endedAt = video.currentTime;
    video.removeEventListener('error', onError);
    jellyfinWrites('');
    video.removeAttribute('src');
  });
  window.__jellyfin = {
    // setCurrentSrc for an audio track change: the same file, another AudioStreamIndex.
    changeAudioTrack() {
      video.removeEventListener('error', onError);
      const at = video.currentTime;
      jellyfinWrites(directPlayUrl() + '&AudioStreamIndex=2');
      video.currentTime = at;
      return video.play().then(() => video.addEventListener('error', onError));
    },
  };
  let playSession = null;
  const directPlayUrl = () => '/Videos/' + itemId + '/stream.mp4?Static=true&mediaSourceId=' + source.Id + '&PlaySessionId=' + playSession;

  // As Jellyfin does: ask for PlaybackInfo, open the player route, play, report.
  async function play(id) {
    itemId = id;
    const info = await (await fetch('/Items/' + itemId + '/PlaybackInfo?UserId=u1&StartTimeTicks=0&IsPlayback=true', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ DeviceProfile: {} }),
    })).json();
    location.hash = '#/video?id=' + itemId;
    source = info.MediaSources[0];
    playSession = info.PlaySessionId;
    if (PLAY_METHOD === 'DirectPlay') {
      jellyfinWrites(directPlayUrl());
      // Resuming where the viewer left off, as Jellyfin does.
      if (${start}) video.currentTime = ${start};
    } else {
      await playTranscode(${start});
    }
    await video.play();
    video.addEventListener('error', onError);
    report('reportPlaybackStart');
    setInterval(() => report('reportPlaybackProgress'), 1000);
  }
  play(${JSON.stringify(item)}).catch((e) => { window.__playError = String(e); });
</script></body></html>`;

function serveFile(request, response, path) {
  const size = statSync(path).size;
  const range = /bytes=(\d*)-(\d*)/.exec(request.headers.range || '');
  const headers = { 'Content-Type': 'video/mp4', 'Accept-Ranges': 'bytes' };
  if (range) {
    const start = range[1] ? Number(range[1]) : size - Number(range[2]);
    const end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
    response.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 });
    createReadStream(path, { start, end }).pipe(response);
  } else {
    response.writeHead(200, { ...headers, 'Content-Length': size });
    createReadStream(path).pipe(response);
  }
}

// Jellyfin's transcode of the live film, made as its HLS transcodes are: H.264 + AAC in MPEG-TS.
const JELLYFIN_HLS_JS = new URL('../node_modules/jellyfin-web-hls.js/dist/hls.min.js', import.meta.url);
const PROXIED = '/liveup';
const proxied = [];
const transcodes = {};
{
  const dir = mkdtempSync(join(tmpdir(), 'liveup-transcode-'));
  execFileSync('ffmpeg', ['-v', 'error', '-i', ITEMS[LIVE], '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50',
    '-c:a', 'aac', '-f', 'hls', '-hls_time', '3', '-hls_playlist_type', 'vod',
    '-hls_segment_filename', join(dir, 'main_%d.ts'), join(dir, 'main.m3u8')]);
  writeFileSync(join(dir, 'master.m3u8'), '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS="avc1.64000b,mp4a.40.2"\nmain.m3u8\n');
  transcodes[LIVE] = dir;
}
const FILM_SECONDS = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', ITEMS[LIVE]]));

const jellyfin = createServer((request, response) => {
  const url = new URL(request.url, 'http://stand-in');
  let match;
  if (url.pathname === '/web/index.html') {
    const item = url.searchParams.get('item');
    const config = JSON.parse(url.searchParams.get('config') || '{}');
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    return response.end(page({
      item, config, start: Number(url.searchParams.get('start') || 0),
      method: url.searchParams.get('method') || 'DirectPlay', native: url.searchParams.get('native') === '1',
      reports: url.searchParams.get('reports') !== 'none', prefix: url.searchParams.get('prefix') || '',
    }));
  }
  // A DASH player page: dash.js (from npm) on a plain <video>, for the CMAF ladder's stream.mpd.
  if (url.pathname === '/dash.html') {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    return response.end(`<!doctype html><html><head><meta charset="utf-8"><title>DASH</title>
<script src="/web/dash.all.min.js"></script></head><body style="margin:0;background:#000">
<video id="dash" muted playsinline style="width:640px;height:360px"></video>
<script>
  window.__dashErrors = [];
  const player = dashjs.MediaPlayer().create();
  player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING } });
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.__dashErrors.push(JSON.stringify(e.error || e)));
  player.initialize(document.getElementById('dash'), ${JSON.stringify(url.searchParams.get('mpd'))}, true);
  window.__dash = player;
</script></body></html>`);
  }
  if (url.pathname === '/web/dash.all.min.js') {
    response.writeHead(200, { 'Content-Type': 'text/javascript' });
    return createReadStream(new URL('../node_modules/dashjs/dist/dash.all.min.js', import.meta.url)).pipe(response);
  }
  if (url.pathname === '/web/hls.js') {
    response.writeHead(200, { 'Content-Type': 'text/javascript' });
    return createReadStream(JELLYFIN_HLS_JS).pipe(response);
  }
  // liveup behind Jellyfin's own site, at a path of it: the reverse proxy passes it on.
  if (url.pathname.startsWith(PROXIED + '/')) {
    proxied.push(url.pathname);
    const upstream = new URL(url.pathname.slice(PROXIED.length) + url.search, LIVEUP);
    const forward = httpRequest(upstream, { method: request.method, headers: { ...request.headers, host: upstream.host } }, (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    });
    forward.on('error', () => { response.writeHead(502); response.end(); });
    return request.pipe(forward);
  }
  if ((match = /^\/videos\/([0-9a-f]{32})\/([a-z0-9_]+\.(m3u8|ts))$/.exec(url.pathname)) && transcodes[match[1]]) {
    const path = join(transcodes[match[1]], match[2]);
    response.writeHead(200, { 'Content-Type': match[3] === 'ts' ? 'video/mp2t' : 'application/vnd.apple.mpegurl' });
    return createReadStream(path).on('error', () => response.end()).pipe(response);
  }
  if ((match = /^\/Items\/([0-9a-f]{32})\/PlaybackInfo$/.exec(url.pathname)) && ITEMS[match[1]]) {
    response.writeHead(200, { 'Content-Type': 'application/json' });
    return response.end(JSON.stringify({
      MediaSources: [{ Id: match[1], Protocol: 'File', SupportsDirectPlay: true, Container: 'mp4' }],
      PlaySessionId: 'play-' + match[1].slice(0, 6),
    }));
  }
  if ((match = /^\/Videos\/([0-9a-f]{32})\/stream\.mp4$/.exec(url.pathname)) && ITEMS[match[1]]) {
    return serveFile(request, response, ITEMS[match[1]]);
  }
  response.writeHead(404);
  response.end();
});
await new Promise((resolve) => jellyfin.listen(0, '127.0.0.1', resolve));
const JELLYFIN = `http://127.0.0.1:${jellyfin.address().port}`;

// ---- the browser ----------------------------------------------------------------------------

const profile = mkdtempSync(join(tmpdir(), 'liveup-chromium-'));
// No network here: without these chromium keeps trying to reach Google's services.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 800, height: 480 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
});
const consoleLog = [];

const states = (tab) => tab.evaluate(() => window.__states);
const player = (tab) => tab.evaluate(() => {
  const v = document.querySelector('video.htmlvideoplayer');
  return { currentTime: v.currentTime, paused: v.paused, src: v.currentSrc, videoWidth: v.videoWidth,
    videoHeight: v.videoHeight, readyState: v.readyState, ended: v.ended };
});

async function waitForState(tab, wanted, timeout = 30000, test = (s) => true) {
  const until = Date.now() + timeout;
  for (;;) {
    const all = await states(tab);
    const found = all.find((s) => s.state === wanted && test(s));
    if (found) return found;
    const last = all[all.length - 1];
    if (Date.now() > until) {
      throw new Error(`no "${wanted}" state within ${timeout} ms; states: ${all.map((s) => s.state).join(' → ')}` +
        (last ? ` (last: ${JSON.stringify(last)})` : ''));
    }
    await sleep(100);
  }
}

async function waitFor(what, timeout, check) {
  const until = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function expect(condition, message, facts) {
  if (!condition) throw new Error(message + (facts === undefined ? '' : ': ' + JSON.stringify(facts)));
}

// Playback goes on: the position moves by about the wall-clock time.
async function expectAdvancing(tab, seconds = 1.5) {
  const before = await player(tab);
  await sleep(seconds * 1000);
  const after = await player(tab);
  const moved = after.currentTime - before.currentTime;
  expect(!after.paused && moved >= seconds * 0.6, `playback did not keep advancing (${moved.toFixed(2)} s in ${seconds} s)`, { before, after });
  return moved;
}

// ---- the tests --------------------------------------------------------------------------------

const tests = [];
// options: `config`, the page's LIVEUP_CONFIG; `start`, where the page resumes the film (s);
// `prepare(tab)`, run before the page loads; `item`, what the page plays (the live film by
// default); `url()`, a page of liveup's own instead of the player.
const test = (name, body, options = {}) => tests.push({ name, body, ...options });

test('auto_switch_keeps_position_and_keeps_playing', async (tab) => {
  const ready = await waitForState(tab, 'ready');
  expect(ready.complete || ready.readySeconds >= ready.position + 2, 'switched before the stream covered the position', ready);
  const switching = await waitForState(tab, 'switching');
  expect(switching.src && !switching.src.startsWith('blob:'), 'was not playing the original', switching);
  expect(switching.videoWidth === WIDTHS.original, 'the original is not the original size', switching);
  expect(!switching.paused && switching.currentTime >= 1.5, 'the original was not playing from where it resumed', switching);
  const switched = await waitForState(tab, 'switched');
  const jump = Math.abs(switched.currentTime - switching.currentTime);
  expect(jump < 0.5, `currentTime jumped by ${jump.toFixed(3)} s`, { switching, switched });
  expect(switched.src.startsWith('blob:'), 'the player is not on the upscaled stream', switched);
  expect(!switched.paused, 'the player paused', switched);
  const moved = await expectAdvancing(tab);
  const now = await player(tab);
  expect(now.videoWidth === WIDTHS.upscaled, `videoWidth ${now.videoWidth}, not ${WIDTHS.upscaled}`, now);
  return { position: switching.currentTime, resumedAt: switched.currentTime, jump, moved, readySeconds: ready.readySeconds, videoWidth: now.videoWidth };
  // The token makes every call to liveup carry a custom header, so a CORS preflight each time.
}, { start: 1.5, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400, token: 'preflight-please' } });

test('prompt_accept_switches_and_keeps_pause', async (tab) => {
  await tab.waitForSelector('.liveup-prompt', { timeout: 30000 });
  await tab.evaluate(() => document.querySelector('video.htmlvideoplayer').pause());
  await sleep(300);
  const before = await player(tab);
  expect(before.paused && before.videoWidth === WIDTHS.original, 'not paused on the original', before);
  await tab.screenshot({ path: join(OUT, 'prompt_accept_switches_and_keeps_pause.prompt.png') });
  await tab.click('.liveup-accept');
  const switched = await waitForState(tab, 'switched');
  const after = await player(tab);
  const jump = Math.abs(after.currentTime - before.currentTime);
  expect(after.paused, 'the pause was not kept', after);
  expect(jump < 0.5, `currentTime jumped by ${jump.toFixed(3)} s`, { before, after });
  expect(after.videoWidth === WIDTHS.upscaled && after.src.startsWith('blob:'), 'not on the upscaled stream', after);
  expect(!(await tab.$('.liveup-prompt')), 'the prompt stayed up');
  await tab.evaluate(() => document.querySelector('video.htmlvideoplayer').play());
  const moved = await expectAdvancing(tab);
  return { position: before.currentTime, resumedAt: after.currentTime, jump, moved, engine: switched.engine };
}, { start: 0.5, config: { autoSwitch: false, safetyMargin: 2, maxRetries: 400, playlist: 'stream' } });

test('prompt_decline_stays_on_the_original', async (tab) => {
  await tab.waitForSelector('.liveup-prompt', { timeout: 30000 });
  await tab.click('.liveup-decline');
  await waitForState(tab, 'declined');
  await sleep(1500); // six checks' worth: nothing may come back
  const all = await states(tab);
  expect(!all.some((s) => s.state === 'switching'), 'switched anyway', all.map((s) => s.state));
  expect(!(await tab.$('.liveup-prompt')), 'the prompt came back');
  const now = await player(tab);
  expect(!now.src.startsWith('blob:') && now.videoWidth === WIDTHS.original, 'left the original', now);
  const moved = await expectAdvancing(tab);
  return { moved, states: all.map((s) => s.state) };
}, { config: { autoSwitch: false, safetyMargin: 2, maxRetries: 400 } });

test('broken_stream_falls_back_to_the_original', async (tab) => {
  const switching = await waitForState(tab, 'switching');
  const restored = await waitForState(tab, 'fallback', 30000, (s) => s.restoredAt !== undefined);
  const now = await waitFor('the original to play again', 15000, async () => {
    const p = await player(tab);
    return !p.paused && p.readyState >= 2 && p.currentTime > 0 ? p : null;
  });
  expect(now.src === switching.src, 'the original source was not restored', { now, switching });
  const jump = Math.abs(now.currentTime - switching.currentTime);
  expect(jump < 0.5, `currentTime jumped by ${jump.toFixed(3)} s`, { switching, now });
  expect(now.videoWidth === WIDTHS.original, 'not the original size', now);
  const moved = await expectAdvancing(tab);
  const failure = (await states(tab)).find((s) => s.state === 'fallback');
  return { reason: failure.reason, position: switching.currentTime, restoredAt: restored.restoredAt, jump, moved };
}, {
  start: 1,
  config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 },
  // Every upscaled segment (CMAF or MPEG-TS) arrives corrupt: hls.js cannot parse it, a fatal
  // error.
  prepare: (tab) => tab.route(/\/hls\/[^/]+\/segment_\d+\.[^/?]*(m4s|ts)(\?|$)/, (route) =>
    route.fulfill({ status: 200, contentType: 'video/mp2t', body: Buffer.alloc(188 * 40, 0x47) })),
});

test('missing_segments_fall_back_after_start_timeout', async (tab) => {
  const switching = await waitForState(tab, 'switching');
  const failure = await waitForState(tab, 'fallback', 20000);
  expect(/did not start in time/.test(failure.reason), 'fell back for another reason', failure);
  const now = await waitFor('the original to play again', 15000, async () => {
    const p = await player(tab);
    return !p.paused && p.readyState >= 2 && p.currentTime > 0 ? p : null;
  });
  expect(now.src === switching.src, 'the original source was not restored', { now, switching });
  const jump = Math.abs(now.currentTime - switching.currentTime);
  expect(jump < 0.5, `currentTime jumped by ${jump.toFixed(3)} s`, { switching, now });
  await expectAdvancing(tab, 1);
  return { reason: failure.reason, jump };
}, {
  start: 1,
  config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400, startTimeout: 3000 },
  // No segment ever comes (404 is not retried by hls.js, and not fatal with one level either).
  prepare: (tab) => tab.route(/\/hls\/[^/]+\/segment_\d+\.[^/?]*(m4s|ts)(\?|$)/, (route) => route.fulfill({ status: 404, body: 'gone' })),
});

test('gives_up_after_max_retries_without_coverage', async (tab) => {
  const gaveUp = await waitForState(tab, 'gave_up', 30000);
  const all = await states(tab);
  expect(!all.some((s) => s.state === 'switching' || s.state === 'prompting'), 'offered a stream that did not cover the position', all);
  expect(/not ready after 6 checks/.test(gaveUp.reason), 'gave up for another reason', gaveUp);
  const now = await player(tab);
  expect(!now.src.startsWith('blob:'), 'left the original', now);
  await expectAdvancing(tab, 1);
  // The rest of the film is not needed: its CPU goes back to the other tests.
  const waiting = all.find((s) => s.jobId);
  if (waiting) await fetch(`${LIVEUP}/api/jobs/${waiting.jobId}`, { method: 'DELETE' });
  return { reason: gaveUp.reason };
}, { item: FRESH, config: { autoSwitch: true, safetyMargin: 100000, maxRetries: 6, checkInterval: 200 } });

// The job behind the stream fails while it plays: liveup then answers 410 with the job's error
// for its playlists and segments (tests/reliability/failed_jobs.rs checks the daemon's side),
// and reports the job failed. The routes below give the page exactly those answers.
const FAILURE = 'segment_00009.ts came out damaged: it is empty (0 MiB free on its disk: full disk?)';
const failedJob = (route) => route.fulfill({
  status: 200, contentType: 'application/json', headers: { 'Access-Control-Allow-Origin': '*' },
  body: JSON.stringify({ job_id: liveJob.job_id, state: 'failed', error: FAILURE }),
});
const gone = (route) => route.fulfill({
  status: 410, contentType: 'application/json', headers: { 'Access-Control-Allow-Origin': '*' },
  body: JSON.stringify({ error: 'job_failed', message: FAILURE, state: 'failed' }),
});

test('a_job_failing_while_switched_restores_the_original_and_says_why', async (tab) => {
  const switched = await waitForState(tab, 'switched');
  await tab.route('**/hls/**', gone);
  await tab.route('**/api/jobs/**', failedJob);
  const failure = await waitForState(tab, 'fallback', 30000);
  expect(failure.reason.includes(FAILURE), 'fell back without the job\'s reason', failure);
  const restored = await waitForState(tab, 'fallback', 15000, (s) => s.restoredAt !== undefined);
  const now = await waitFor('the original to play again', 15000, async () => {
    const p = await player(tab);
    return !p.paused && p.readyState >= 2 && p.videoWidth === WIDTHS.original ? p : null;
  });
  expect(!now.src.startsWith('blob:'), 'still on the upscaled stream', now);
  expect(Math.abs(restored.restoredAt - switched.currentTime) < 15, 'restored far from where it played', { restored, switched });
  const notice = await tab.textContent('.liveup-notice');
  expect(notice && notice.includes(FAILURE), 'the viewer was not told why', notice);
  const all = await states(tab);
  expect(all.filter((s) => s.state === 'switching').length === 1, 'switched again', all.map((s) => s.state));
  await expectAdvancing(tab, 1);
  return { reason: failure.reason, restoredAt: restored.restoredAt, notice };
  // A short buffer: hls.js keeps asking for fragments, so the next one gets the 410.
}, { start: 1, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400, hlsConfig: { maxBufferLength: 2, maxMaxBufferLength: 3 } } });

test('a_failed_job_is_never_offered_and_the_viewer_is_told', async (tab) => {
  const gaveUp = await waitForState(tab, 'gave_up', 30000);
  expect(gaveUp.reason.includes(FAILURE), 'gave up for another reason', gaveUp);
  const all = await states(tab);
  expect(!all.some((s) => s.state === 'switching' || s.state === 'prompting'), 'offered a failed job', all.map((s) => s.state));
  const notice = await tab.waitForSelector('.liveup-notice', { timeout: 5000 });
  const text = await notice.textContent();
  expect(text.includes(FAILURE), 'the notice does not say why', text);
  const now = await player(tab);
  expect(!now.src.startsWith('blob:'), 'left the original', now);
  await expectAdvancing(tab, 1);
  return { reason: gaveUp.reason, notice: text };
}, {
  config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 },
  prepare: (tab) => tab.route('**/api/jobs/**', failedJob),
});

test('status_page_lists_jobs_plays_them_and_shows_before_after', async (tab) => {
  const card = `.job[data-job-id="${tab.__jobId}"]`;
  await tab.waitForSelector(card, { timeout: 20000 });
  const preview = await waitFor('the before/after picture', 30000, () =>
    tab.evaluate((card) => {
      const img = document.querySelector(card + ' img.preview');
      return img && img.complete && img.naturalWidth ? { width: img.naturalWidth, height: img.naturalHeight } : null;
    }, card));
  expect(preview.width > 2 * WIDTHS.upscaled && preview.height > 0, 'the picture is not two upscaled frames wide', preview);
  const info = await tab.evaluate((card) => {
    const c = document.querySelector(card);
    return { state: c.querySelector('.state').textContent, bar: c.querySelector('.bar > span').style.width,
      progress: Number(c.dataset.progress), jobs: document.querySelectorAll('.job').length };
  }, card);
  expect(/running|complete/.test(info.state) && info.progress > 0 && parseFloat(info.bar) > 0, 'no state or progress', info);
  await tab.click(`${card} button.play`);
  const played = await waitFor('the job to play in the page', 30000, () =>
    tab.evaluate((card) => {
      const v = document.querySelector(card + ' video');
      return v && v.currentTime > 0.5 && v.videoWidth ? { videoWidth: v.videoWidth, currentTime: v.currentTime } : null;
    }, card));
  expect(played.videoWidth === WIDTHS.upscaled, 'the page plays something else', played);
  return { ...info, preview, played };
}, { url: async () => `${LIVEUP}/` });

// ---- living inside jellyfin-web's player ------------------------------------------------------

const writes = (tab) => tab.evaluate(() => window.__srcWrites);
const HLS_JS_VERSION = JSON.parse(readFileSync(new URL('../node_modules/hls.js/package.json', import.meta.url))).version;
const JELLYFIN_HLS_JS_VERSION = JSON.parse(readFileSync(new URL('../node_modules/jellyfin-web-hls.js/package.json', import.meta.url))).version;

test('an_error_on_the_upscaled_stream_is_handled_by_liveup_alone', async (tab) => {
  const switched = await waitForState(tab, 'switched');
  expect(switched.engineVersion === HLS_JS_VERSION, `liveup played with hls.js ${switched.engineVersion}, not its own ${HLS_JS_VERSION}`, switched);
  const hls = await tab.evaluate(() => ({ same: window.Hls === window.__jellyfinHls, marked: !!window.Hls.__jellyfinWeb }));
  expect(hls.same && hls.marked, "window.Hls is no longer jellyfin-web's", hls);
  // Progress reports carry the film's position: the upscaled stream's time is the film's.
  await sleep(2200);
  const reported = await tab.evaluate(() => ({ last: window.__reports[window.__reports.length - 1],
    now: document.querySelector('video.htmlvideoplayer').currentTime }));
  const drift = Math.abs(reported.last.PositionTicks / 1e7 - reported.now);
  expect(drift < 1.5, `the progress report is ${drift.toFixed(2)} s off the film's position`, reported);
  const before = (await writes(tab)).length;
  // The element reports a decode error (MEDIA_ERR_DECODE), as a broken stream makes it.
  const at = await tab.evaluate(() => {
    const v = document.querySelector('video.htmlvideoplayer');
    Object.defineProperty(v, 'error', { configurable: true, get: () => ({ code: 3, message: 'stand-in decode error' }) });
    v.dispatchEvent(new Event('error'));
    delete v.error;
    return v.currentTime;
  });
  const restored = await waitForState(tab, 'fallback', 15000, (x) => x.restoredAt !== undefined);
  await sleep(1500);
  const after = (await writes(tab)).slice(before);
  const jellyfinErrors = await tab.evaluate(() => window.__jellyfinErrors);
  expect(jellyfinErrors.length === 0, "jellyfin-web's error handler ran too", jellyfinErrors);
  expect(after.length === 1 && after[0].by === 'liveup', 'not exactly one write of src, by liveup', after);
  expect(after[0].src.includes('Static=true'), 'liveup did not go back to the original', after);
  expect(Math.abs(restored.restoredAt - at) < 0.5, 'the position was not kept', { restored, at });
  await expectAdvancing(tab, 1);
  return { engineVersion: switched.engineVersion, drift, writes: after.map((w) => w.by), restoredAt: restored.restoredAt };
}, { start: 1, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

test('jellyfin_changing_the_source_ends_liveups_session_for_good', async (tab) => {
  await waitForState(tab, 'switched');
  const before = (await writes(tab)).length;
  await tab.evaluate(() => window.__jellyfin.changeAudioTrack());
  const ended = await waitForState(tab, 'ended', 10000);
  expect(/Jellyfin changed the source/.test(ended.reason), 'ended for another reason', ended);
  // jellyfin-web asks for PlaybackInfo again when it changes streams: liveup must stay out.
  await tab.evaluate(() => fetch('/Items/' + new URLSearchParams(location.hash.split('?')[1]).get('id') +
    '/PlaybackInfo?IsPlayback=true', { method: 'POST' }));
  await sleep(3000);
  const after = (await writes(tab)).slice(before);
  expect(after.length === 1 && after[0].by === 'jellyfin', 'someone besides jellyfin-web wrote src', after);
  const all = await states(tab);
  const last = all.map((x) => x.state).lastIndexOf('ended');
  expect(!all.slice(last + 1).some((x) => x.state === 'switching' || x.state === 'found'), 'liveup came back', all.map((x) => x.state));
  const now = await player(tab);
  expect(now.src.includes('AudioStreamIndex=2'), "jellyfin-web's source is not playing", now);
  await expectAdvancing(tab, 1);
  return { reason: ended.reason, writes: after.map((w) => w.by) };
}, { start: 1, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

test('a_transcode_is_left_alone', async (tab) => {
  const gaveUp = await waitForState(tab, 'gave_up', 30000);
  expect(/not direct-playing/.test(gaveUp.reason) && gaveUp.playMethod === 'Transcode', 'gave up for another reason', gaveUp);
  const all = await writes(tab);
  expect(all.length > 0 && all.every((w) => w.by === 'jellyfin'), 'liveup wrote src over a transcode', all);
  const engine = await tab.evaluate(() => ({ version: window.Hls.version, jellyfin: window.Hls === window.__jellyfinHls }));
  expect(engine.jellyfin && engine.version === JELLYFIN_HLS_JS_VERSION, "jellyfin-web's hls.js is not the one playing", engine);
  const now = await player(tab);
  expect(now.src.startsWith('blob:'), "the transcode is not played by jellyfin-web's hls.js", now);
  expect(!(await states(tab)).some((x) => x.state === 'switching'), 'liveup switched a transcode');
  await expectAdvancing(tab, 1);
  return { reason: gaveUp.reason, engine: engine.version };
}, { method: 'Transcode', config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

// Safari, iOS, Tizen, webOS (and Chromium ≥ 141 with 10.10) play Jellyfin's HLS natively: the
// src is the .m3u8 URL. No progress reports here, so the URL alone must say it is no direct play.
test('a_native_hls_transcode_is_left_alone', async (tab) => {
  const gaveUp = await waitForState(tab, 'gave_up', 30000);
  expect(/not direct-playing/.test(gaveUp.reason), 'gave up for another reason', gaveUp);
  const all = await writes(tab);
  expect(all.length === 1 && all[0].by === 'jellyfin' && /\/master\.m3u8\?/.test(all[0].src), 'not one write of the .m3u8 by jellyfin-web', all);
  const now = await player(tab);
  expect(now.src.includes('/master.m3u8?'), 'the browser is not playing the transcode itself', now);
  expect(!(await states(tab)).some((x) => x.state === 'switching'), 'liveup switched a transcode');
  await expectAdvancing(tab, 1);
  return { reason: gaveUp.reason, src: now.src.replace(/\?.*/, '') };
}, { method: 'Transcode', native: true, reports: false, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

// jellyfin-web's OSD seeks by writing the element's currentTime (plugin.js currentTime(val)):
// on liveup's stream that is the film's time, so the picture lands where the viewer asked.
test('seeking_from_jellyfins_osd_lands_on_the_films_time', async (tab) => {
  await waitForState(tab, 'switched');
  const before = (await writes(tab)).length;
  const target = FILM_SECONDS - 8;
  await tab.evaluate((t) => { document.querySelector('video.htmlvideoplayer').currentTime = t; }, target);
  const landed = await waitFor('the seek to land', 15000, async () => {
    const p = await player(tab);
    return p.readyState >= 3 && p.currentTime >= target && !p.paused ? p : null;
  });
  expect(landed.currentTime - target < 1, 'played from elsewhere than the seek', { landed, target });
  expect(landed.src.startsWith('blob:') && landed.videoWidth === WIDTHS.upscaled, 'left the upscaled stream', landed);
  const after = (await writes(tab)).slice(before);
  expect(after.length === 0, 'a seek wrote src', after);
  await expectAdvancing(tab, 1);
  const reported = await tab.evaluate(() => window.__reports[window.__reports.length - 1].PositionTicks / 1e7);
  await sleep(1100);
  const next = await tab.evaluate(() => window.__reports[window.__reports.length - 1].PositionTicks / 1e7);
  expect(next >= target, `Jellyfin was told ${next} s after a seek to ${target} s`, { reported, next });
  return { target, landedAt: landed.currentTime, reported: next };
}, { start: 1, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

// A profile's rungs (tests/browser.rs configures `small`: 72p and 54p below the upscaled 108p):
// hls.js switches between them during playback, forced through its level API and then by
// bandwidth, with no stall and no jump in the film's time.
test('hls_js_switches_rungs_with_no_stall_and_no_jump', async (tab) => {
  await waitForState(tab, 'switched');
  const levels = await tab.evaluate(() => window.liveup.hls.levels.map((l) => ({ height: l.height, bitrate: l.bitrate })));
  const heights = levels.map((l) => l.height).sort((a, b) => b - a);
  expect(JSON.stringify(heights) === JSON.stringify([WIDTHS.upscaledHeight, 72, 54]), 'not the three rungs', levels);
  // Sample the position every 100 ms while switching.
  await tab.evaluate(() => {
    const v = document.querySelector('video.htmlvideoplayer');
    window.__samples = [];
    window.__sampler = setInterval(() => window.__samples.push({ t: v.currentTime, h: v.videoHeight, at: performance.now(), paused: v.paused }), 100);
  });
  // Bandwidth first: hls.js's own choice on a link too slow for the upscaled rung.
  const top = levels.find((l) => l.height === WIDTHS.upscaledHeight).bitrate;
  const bottom = Math.min(...levels.map((l) => l.bitrate));
  expect(bottom < top * 0.75, 'the rungs cost about what the upscaled one does', levels);
  const cdp = tab.__cdp;
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 20, downloadThroughput: (top + bottom) / 2 / 8, uploadThroughput: -1,
  });
  const abr = () => tab.evaluate(() => {
    const hls = window.liveup.hls;
    return { estimate: hls.bandwidthEstimate, auto: hls.autoLevelEnabled, loadLevel: hls.loadLevel, next: hls.nextAutoLevel,
      levels: hls.levels.map((l) => [l.height, l.bitrate]) };
  });
  const down = await waitFor('hls.js to pick a lower rung on a slow link', 12000,
    async () => { const p = await player(tab); return p.videoHeight && p.videoHeight < WIDTHS.upscaledHeight ? p : null; })
    .catch(async (e) => { throw new Error(e.message + ' ' + JSON.stringify(await abr())); });
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  // Then forced through the level API: at once, and at the next segment.
  const toHeight = async (height, how) => {
    await tab.evaluate(({ height, how }) => {
      const hls = window.liveup.hls;
      const index = hls.levels.findIndex((l) => l.height === height);
      if (how === 'now') hls.currentLevel = index; else hls.nextLevel = index;
    }, { height, how });
    return waitFor(`the picture at ${height} lines`, 8000, async () => (await player(tab)).videoHeight === height);
  };
  await toHeight(54, 'next');
  await toHeight(72, 'now');
  await toHeight(WIDTHS.upscaledHeight, 'next');
  const samples = await tab.evaluate(() => { clearInterval(window.__sampler); return window.__samples; });
  let stall = 0;
  let still = 0;
  let jump = 0;
  for (let i = 1; i < samples.length; i++) {
    const moved = samples[i].t - samples[i - 1].t;
    jump = Math.max(jump, Math.abs(moved - (samples[i].at - samples[i - 1].at) / 1000));
    still = moved > 0 ? 0 : still + (samples[i].at - samples[i - 1].at);
    stall = Math.max(stall, still);
  }
  expect(samples.every((x, i) => i === 0 || x.t >= samples[i - 1].t), 'the film time went back', samples);
  expect(jump < 0.5, `the film time jumped by ${jump.toFixed(3)} s`, samples);
  expect(stall < 1500, `playback stood still for ${stall.toFixed(0)} ms`, samples);
  expect(samples.every((x) => !x.paused), 'the player paused');
  return { levels: heights, heightsSeen: [...new Set(samples.map((x) => x.h))], slowLinkHeight: down.videoHeight, longestStillMs: Math.round(stall), biggestJump: Number(jump.toFixed(3)) };
}, {
  start: 0.5,
  // A short buffer, so hls.js keeps loading segments and choosing among the rungs.
  config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400, profile: 'small', hlsConfig: { maxBufferLength: 2, maxMaxBufferLength: 3 } },
  // The rungs exist before the page asks: the profile is asked for, and made, first.
  prepare: async (tab) => {
    // Segments of a finished job are cached for a year: earlier tabs' copies would come from the
    // browser's cache, untouched by the slow link.
    tab.__cdp = await tab.context().newCDPSession(tab);
    await tab.__cdp.send('Network.enable');
    await tab.__cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    await fetch(`${LIVEUP}/hls/${liveJob.job_id}/master.m3u8?profile=small`);
    await waitFor('the rungs of "small"', 90000, async () => {
      const job = await (await fetch(`${LIVEUP}/api/jobs/${liveJob.job_id}`)).json();
      return job.variants && job.variants.length === 3 && job.variants.every((v) => v.state === 'complete');
    });
  },
});

// The same CMAF files through DASH: dash.js (4.7, from npm) plays stream.mpd, moves to the
// lowest rung when told, and the film's time keeps going.
test('dash_js_plays_the_cmaf_ladder', async (tab) => {
  const dash = () => tab.evaluate(() => {
    const v = document.getElementById('dash');
    return { t: v.currentTime, h: v.videoHeight, paused: v.paused, errors: window.__dashErrors,
      qualities: window.__dash.getBitrateInfoListFor('video').map((q) => q.height) };
  });
  const playing = await waitFor('dash.js to play', 20000, async () => { const d = await dash(); return d.t > 1 ? d : null; });
  expect(JSON.stringify([...playing.qualities].sort((a, b) => b - a)) === JSON.stringify([WIDTHS.upscaledHeight, 72, 54]),
    'dash.js does not see the three rungs', playing);
  await tab.evaluate(() => {
    window.__dash.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
    const lowest = window.__dash.getBitrateInfoListFor('video').reduce((a, b) => (a.height <= b.height ? a : b));
    window.__dash.setQualityFor('video', lowest.qualityIndex, true);
  });
  const low = await waitFor('the lowest rung', 15000, async () => { const d = await dash(); return d.h === 54 ? d : null; });
  expect(low.t >= playing.t, 'the film time went back', { playing, low });
  await sleep(1000);
  const after = await dash();
  expect(after.t > low.t + 0.5 && !after.paused, 'playback stopped after the switch', { low, after });
  expect(after.errors.length === 0, 'dash.js reported errors', after.errors);
  const segments = tab.__requests.filter((u) => /\/segment_\d{5}\.\d+p\.m4s$/.test(u));
  expect(segments.length > 0, 'no CMAF segment was fetched', tab.__requests);
  return { qualities: playing.qualities, lowAt: low.t, segments: segments.length };
}, {
  url: async () => {
    await fetch(`${LIVEUP}/hls/${liveJob.job_id}/master.m3u8?profile=small`);
    await waitFor('the rungs of "small"', 90000, async () => {
      const job = await (await fetch(`${LIVEUP}/api/jobs/${liveJob.job_id}`)).json();
      return job.variants && job.variants.length === 3 && job.variants.every((v) => v.state === 'complete');
    });
    return `${JELLYFIN}/dash.html?mpd=${encodeURIComponent(`${LIVEUP}/hls/${liveJob.job_id}/stream.mpd?profile=small`)}`;
  },
});

// The upscaled stream plays to the film's end: `ended` reaches jellyfin-web once, at the film's
// duration, and its resetSrc is the last word (liveup lets go and writes nothing after it).
test('the_films_end_reaches_jellyfin_once', async (tab) => {
  const switched = await waitForState(tab, 'switched', 90000);
  const before = (await writes(tab)).length;
  await waitFor("jellyfin-web's ended handler", 30000, () => tab.evaluate(() => window.__jellyfinEnded > 0));
  await sleep(1500);
  const facts = await tab.evaluate(() => ({ ended: window.__jellyfinEnded, at: window.__endedAt }));
  expect(facts.ended === 1, `jellyfin-web's ended handler ran ${facts.ended} times`, facts);
  expect(Math.abs(facts.at - FILM_SECONDS) < 0.5, `ended at ${facts.at} s, the film lasts ${FILM_SECONDS} s`, facts);
  const after = (await writes(tab)).slice(before);
  expect(after.length === 1 && after[0].by === 'jellyfin' && after[0].src === '', "not exactly jellyfin-web's resetSrc after the end", after);
  const last = (await states(tab)).slice(-1)[0];
  expect(last.state === 'ended', 'liveup did not end its session', last);
  return { switchedAt: switched.currentTime, endedAt: facts.at, film: FILM_SECONDS, writes: after.map((w) => w.by) };
}, { start: FILM_SECONDS - 5, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

// liveup behind Jellyfin's own site (https in real life: no mixed content): the script is loaded
// from a path of Jellyfin's origin and finds liveup there, with no liveupUrl configured.
test('same_origin_under_a_path_of_jellyfins_site', async (tab) => {
  const switched = await waitForState(tab, 'switched');
  const origin = await tab.evaluate(() => location.origin);
  const elsewhere = tab.__requests.filter((url) => !url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:'));
  expect(elsewhere.length === 0, 'requests left Jellyfin\'s origin', elsewhere);
  const through = { playlists: proxied.filter((p) => p.endsWith('.m3u8')).length, segments: proxied.filter((p) => /\.(ts|m4s)$/.test(p)).length,
    module: proxied.some((p) => p.endsWith('/plugin/hls.mjs')) };
  expect(through.playlists > 0 && through.segments > 0 && through.module, 'liveup was not reached through the path', through);
  await expectAdvancing(tab, 1);
  return { ...through, at: switched.currentTime };
}, { start: 1, prefix: true, config: { autoSwitch: true, safetyMargin: 2, maxRetries: 400 } });

// A film the model cannot make as fast as it plays: liveup says so (live: false, ready_at) and
// starts a stand-in made with its live_fallback_model. Here the stand-in is hidden from the
// script: it must then offer nothing and tell the viewer when the film will be ready.
test('a_film_the_upscaler_cannot_keep_up_with_is_not_offered_and_the_ready_time_is_shown', async (tab) => {
  const notLive = await waitForState(tab, 'not_live', 90000);
  const notice = await tab.waitForSelector('.liveup-notice', { timeout: 5000 });
  const text = await notice.textContent();
  expect(/slower than the film plays; it will be ready at \d/.test(text), 'the notice does not give the ready time', text);
  expect(notLive.readyAt > Date.now() / 1000, 'ready_at is not in the future', notLive);
  await sleep(2000); // eight checks' worth: still no offer
  const all = await states(tab);
  expect(!all.some((s) => ['ready', 'prompting', 'switching'].includes(s.state)), 'offered a switch it cannot keep', all.map((s) => s.state));
  const now = await player(tab);
  expect(!now.src.startsWith('blob:'), 'left the original', now);
  await expectAdvancing(tab, 1);
  return { notice: text, readyAt: notLive.readyAt, rate: notLive.rate };
}, {
  item: SLOW,
  config: { liveupUrl: FALLBACK, autoSwitch: true, safetyMargin: 2, maxRetries: 400 },
  prepare: (tab) => tab.route(/\/api\/jobs\/[0-9a-f]+$/, async (route) => {
    const reply = await route.fetch();
    const job = await reply.json();
    delete job.stand_in;
    await route.fulfill({ response: reply, body: JSON.stringify(job) });
  }),
});

// The same film with the stand-in visible: the viewer is offered the quick upscale, told which
// model it is and when the film's own will be ready, and sees the model while it plays.
test('a_stand_in_made_with_the_fallback_model_plays_and_says_so', async (tab) => {
  const standing = await waitForState(tab, 'standing_in', 90000);
  expect(standing.model === 'lanczos' && standing.forModel !== 'lanczos', 'not the fallback model', standing);
  const prompt = await tab.waitForSelector('.liveup-prompt', { timeout: 60000 });
  const offer = await prompt.textContent();
  expect(offer.includes('lanczos') && offer.includes(standing.forModel), 'the prompt does not name both models', offer);
  await tab.click('.liveup-accept');
  const switched = await waitForState(tab, 'switched');
  expect(switched.model === 'lanczos' && switched.standIn === true, 'switched to something else', switched);
  const badge = await (await tab.waitForSelector('.liveup-badge', { timeout: 5000 })).textContent();
  expect(badge.includes('lanczos') && badge.includes(standing.forModel), 'the player does not say which model plays', badge);
  const now = await player(tab);
  expect(now.src.startsWith('blob:') && now.videoWidth === WIDTHS.slowUpscaled, 'not on the stand-in stream', now);
  await expectAdvancing(tab, 1);
  return { offer, badge, standIn: standing.jobId };
}, { item: SLOW, start: 1, config: { liveupUrl: FALLBACK, autoSwitch: false, safetyMargin: 2, maxRetries: 400, playlist: 'index' } });

// ---- running them -----------------------------------------------------------------------------

const liveJob = await (await fetch(`${LIVEUP}/upscale-trigger`, {
  method: 'POST', body: JSON.stringify({ NotificationType: 'PlaybackStart', ItemId: LIVE }),
})).json();

const results = [];
for (const { name, body, config, prepare, item, url, start, method, native, reports, prefix } of tests) {
  if (ONLY && !name.includes(ONLY)) continue;
  const started = Date.now();
  let tab = null;
  const result = { name, ok: false, screenshot: join(OUT, `${name}.png`) };
  try {
    if (url) {
      tab = await browser.newPage();
      tab.on('console', (message) => consoleLog.push(`[${name}] [${message.type()}] ${message.text()} ${message.type() === 'error' ? message.location().url : ''}`));
      tab.__jobId = liveJob.job_id;
      tab.__requests = [];
      tab.on('request', (request) => tab.__requests.push(request.url()));
      await tab.goto(await url());
    } else {
      tab = await browser.newPage();
      tab.on('console', (message) => consoleLog.push(`[${name}] [${message.type()}] ${message.text()} ${message.type() === 'error' ? message.location().url : ''}`));
      tab.on('pageerror', (error) => consoleLog.push(`[pageerror] ${error.message}`));
      tab.__requests = [];
      tab.on('request', (request) => tab.__requests.push(request.url()));
      if (prepare) await prepare(tab);
      const query = new URLSearchParams({
        item: item || LIVE,
        start: String(start || 0),
        method: method || 'DirectPlay',
        native: native ? '1' : '0',
        reports: reports === false ? 'none' : 'all',
        prefix: prefix ? PROXIED : '',
        config: JSON.stringify({ debug: true, checkInterval: 250, ...config }),
      });
      await tab.goto(`${JELLYFIN}/web/index.html?${query}`);
    }
    result.details = await body(tab);
    result.ok = true;
  } catch (error) {
    result.error = String((error && error.stack) || error);
    if (tab) {
      try {
        result.states = await states(tab);
        result.player = await player(tab);
      } catch (e) {
        /* the page is gone */
      }
    }
  }
  if (tab) {
    try {
      await tab.screenshot({ path: result.screenshot });
    } catch (e) {
      result.screenshot = null;
    }
    await tab.close();
  }
  result.seconds = (Date.now() - started) / 1000;
  results.push(result);
  writeFileSync(join(OUT, 'console.log'), consoleLog.join('\n') + '\n');
  console.log(`${result.ok ? 'ok  ' : 'FAIL'} ${name} (${result.seconds.toFixed(1)} s)` +
    (result.ok ? ' ' + JSON.stringify(result.details) : '\n' + result.error));
}

await browser.close();
jellyfin.close();
rmSync(profile, { recursive: true, force: true });
for (const dir of Object.values(transcodes)) rmSync(dir, { recursive: true, force: true });
writeFileSync(join(OUT, 'results.json'), JSON.stringify({ liveup: LIVEUP, jellyfin: JELLYFIN, results }, null, 2));
writeFileSync(join(OUT, 'console.log'), consoleLog.join('\n') + '\n');
const failed = results.filter((r) => !r.ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed || results.length === 0 ? 1 : 0);

/*
 * liveup for Jellyfin web: switches Jellyfin's player to liveup's upscaled stream of the film it
 * is playing, at the same position, once enough of it has been upscaled.
 *
 * Load it into Jellyfin's web client with one tag (see liveup's README, "Jellyfin integration"):
 *   <script src="http://LIVEUP-HOST:8765/plugin/hls-streaming.js"></script>
 * To change a setting, define window.LIVEUP_CONFIG before that tag, e.g.
 *   <script>window.LIVEUP_CONFIG = { autoSwitch: true };</script>
 *
 * What it does, for each film Jellyfin plays in `video.htmlvideoplayer` (route #/video):
 *  1. learns the item id from Jellyfin's own `/Items/{id}/PlaybackInfo` request (or, failing that,
 *     from the `/Videos/{id}/…` URL the player loads);
 *  2. asks liveup to upscale it (POST /upscale-trigger with the Jellyfin webhook form; if liveup
 *     has no Jellyfin API key, it sends the file path it gets from window.ApiClient instead);
 *  3. polls the job every `checkInterval` ms, at most `maxRetries` times, until the upscaled film
 *     covers the current position plus `safetyMargin` seconds (or is complete) and liveup's
 *     measured rate says the viewer will not catch up with the upscaler; when it says they would,
 *     offers liveup's stand-in made with a quicker model, if there is one, or else nothing, and
 *     tells the viewer when the film will be ready;
 *  4. switches the <video> to the upscaled HLS stream with hls.js (native HLS where there is no
 *     MediaSource, i.e. iOS Safari), automatically or once the viewer accepts a small prompt,
 *     keeping the position and the play/pause state, with a label naming the model that plays;
 *  5. on a fatal playback error puts the original source back at the current position, and when
 *     the upscaling job failed or was cancelled (liveup answers 410) tells the viewer why.
 *
 * Living inside jellyfin-web's player (src/plugins/htmlVideoPlayer/plugin.js and
 * src/components/htmlMediaHelper.js):
 *  - Once play starts, jellyfin-web adds an `error` listener to the element (onSuccessfulPlay);
 *    for media errors 2, 3 and 4 its onError goes to playbackmanager's onPlaybackError, which
 *    retries with a transcode (changeStream with EnableDirectPlay: false): a new `src`. While
 *    liveup's stream is on the element, an error of that stream is liveup's alone: a capturing
 *    listener on window stops it before it reaches the element's listeners, and liveup goes back
 *    to the original itself.
 *  - Any `src` jellyfin-web writes while liveup's stream plays (a track or quality change through
 *    setCurrentSrc, its own transcode, resetSrc when playback ends) wins: liveup lets go of the
 *    element (its hls.js leaves a source it did not set alone), restores nothing, and does not
 *    switch again until the next playback.
 *  - Only direct play is taken over: a `/Videos/{id}/stream…?Static=true` source, or PlayMethod
 *    DirectPlay in jellyfin-web's own ApiClient.reportPlayback* calls. A transcode, through
 *    jellyfin-web's hls.js or played natively (Safari, Chromium ≥ 141), is left alone.
 *  - jellyfin-web sets window.Hls to its own hls.js (requireHlsPlayer). liveup imports the hls.js
 *    it pins as an ES module and never reads or changes window.Hls.
 *  - The upscaled playlist starts at the film's start, so currentTime stays the film's position:
 *    progress reports, resume points, seeking from the OSD and `ended` work as before.
 * window.liveup exposes the state for debugging; every change is also a `liveup:state` event on
 * window.
 */
(function () {
  'use strict';

  var currentScript = document.currentScript;
  // Where liveup answers: the script's own URL up to `/plugin/hls-streaming.js`, so a liveup
  // under a path of Jellyfin's site (its `base_path`, e.g. https://jellyfin.example/liveup) is
  // found there.
  var scriptBase = (function () {
    try {
      if (!currentScript || !currentScript.src) return '';
      var url = new URL(currentScript.src);
      return url.origin + url.pathname.replace(/\/plugin\/[^/]*$/, '');
    } catch (e) {
      return '';
    }
  })();

  // Every setting, with its default. Override any of them with window.LIVEUP_CONFIG.
  var CONFIG = Object.assign(
    {
      // Where liveup answers; by default where this script was loaded from.
      liveupUrl: scriptBase,
      // hls.js as liveup serves it, an ES module (installed from npm by scripts/setup; no CDN).
      hlsJsUrl: null,
      // liveup's shared token, needed when it listens beyond loopback.
      token: '',
      // How often to ask liveup how far the upscaling is (ms).
      checkInterval: 2000,
      // How many times to ask before giving up on this film.
      maxRetries: 30,
      // true: switch as soon as the stream is ready; false: ask the viewer first.
      autoSwitch: false,
      // Upscaled seconds needed beyond the current position before switching.
      safetyMargin: 6,
      // 'master': the rungs of a profile (hls.js picks one by bandwidth; missing rungs are made
      // from the upscaled film while the closest ones play); 'index': the upscaled rung's
      // whole-film playlist alone; 'stream': its growing live playlist (hls_url). Every one of
      // them lets the viewer seek ahead of the upscaler except 'stream'.
      playlist: 'master',
      // The profile to ask for; empty: chosen from the screen (tv, laptop or phone) when liveup
      // has a profile of that name, else liveup's default.
      profile: '',
      // How long the prompt stays up without an answer (ms); 0 keeps it until answered.
      promptTimeout: 0,
      // The upscaled stream must show a picture within this long after a switch (ms)...
      startTimeout: 20000,
      // ...and, once playing, never stand still longer than this (ms), or the original comes back.
      stallTimeout: 15000,
      // Jellyfin's player element.
      videoSelector: 'video.htmlvideoplayer',
      // The route Jellyfin plays video under (location.hash starts with it).
      videoRoute: '#/video',
      // Extra hls.js settings.
      hlsConfig: {},
      // How long a notice to the viewer (why the upscaled version went away) stays up (ms).
      noticeTimeout: 10000,
      // Log every step to the console.
      debug: false,
    },
    window.LIVEUP_CONFIG || {}
  );
  CONFIG.liveupUrl = String(CONFIG.liveupUrl || '').replace(/\/+$/, '');
  if (!CONFIG.hlsJsUrl) CONFIG.hlsJsUrl = CONFIG.liveupUrl + '/plugin/hls.mjs';

  var ITEM_ID = '([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})';
  var PLAYBACK_INFO = new RegExp('/Items/' + ITEM_ID + '/PlaybackInfo', 'i');
  var VIDEO_URL = new RegExp('/Videos/' + ITEM_ID + '/', 'i');
  // jellyfin-web's direct play: the file itself, `/Videos/{id}/stream.{container}?Static=true&…`.
  var DIRECT_PLAY_URL = /\/Videos\/[^/?#]+\/stream(\.[A-Za-z0-9]+)?\?([^#]*&)?static=true(&|#|$)/i;

  function log() {
    if (CONFIG.debug && window.console) {
      console.log.apply(console, ['[liveup]'].concat([].slice.call(arguments)));
    }
  }

  // One playback of one film: what liveup said about it and where the switch stands.
  var session = null;
  var hlsLoad = null;
  // The item whose playback jellyfin-web took back (it wrote its own source): no switching again
  // until the next playback.
  var yielded = null;
  // PlayMethod by item, as jellyfin-web reports it to the server.
  var playMethods = {};

  var api = {
    config: CONFIG,
    get state() {
      return session ? session.state : 'idle';
    },
    get session() {
      return session ? Object.assign({}, session.info, { state: session.state, itemId: session.itemId }) : null;
    },
    switchNow: function () {
      if (session && session.job) startSwitch(session);
    },
    // liveup's hls.js while it plays (its levels are the rungs), for debugging.
    get hls() {
      return session ? session.hls : null;
    },
  };
  window.liveup = api;

  function setState(s, state, extra) {
    s.state = state;
    Object.assign(s.info, extra || {});
    log('state', state, extra || '');
    try {
      window.dispatchEvent(
        new CustomEvent('liveup:state', {
          detail: Object.assign({ state: state, itemId: s.itemId }, extra || {}),
        })
      );
    } catch (e) {
      /* no CustomEvent: nothing listens anyway */
    }
  }

  // ---- learning the item --------------------------------------------------------------------

  function sawUrl(url) {
    var match = PLAYBACK_INFO.exec(String(url || ''));
    if (match) onItem(match[1].replace(/-/g, '').toLowerCase());
  }

  if (window.fetch) {
    var originalFetch = window.fetch;
    window.fetch = function (input) {
      try {
        sawUrl(typeof input === 'string' ? input : input && input.url);
      } catch (e) {
        /* never break Jellyfin's own requests */
      }
      return originalFetch.apply(this, arguments);
    };
  }
  if (window.XMLHttpRequest) {
    var originalOpen = XMLHttpRequest.prototype.open;
    XMLHttpRequest.prototype.open = function (method, url) {
      try {
        sawUrl(url);
      } catch (e) {
        /* never break Jellyfin's own requests */
      }
      return originalOpen.apply(this, arguments);
    };
  }

  function onVideoRoute() {
    var hash = window.location.hash || '';
    return hash.indexOf(CONFIG.videoRoute) === 0 || /videoosd/i.test(hash);
  }

  function findVideo() {
    return document.querySelector(CONFIG.videoSelector);
  }

  function onItem(itemId) {
    if (session && session.itemId === itemId && session.state !== 'ended') return;
    if (yielded === itemId) return;
    yielded = null;
    watchReports();
    end('another item');
    session = {
      itemId: itemId,
      state: 'new',
      info: {},
      retries: 0,
      timer: null,
      video: null,
      job: null,
      hls: null,
      original: null,
      prompt: null,
    };
    setState(session, 'found', { itemId: itemId });
    whenPlayerReady(session);
  }

  // The player element shows up (and the route changes) after the PlaybackInfo request.
  function whenPlayerReady(s) {
    var tries = 0;
    (function look() {
      if (session !== s) return;
      var video = findVideo();
      if (video && onVideoRoute()) {
        s.video = video;
        watchVideo(s);
        ask(s);
        return;
      }
      if (++tries > 600) return setState(s, 'gave_up', { reason: 'no player' });
      s.timer = setTimeout(look, 100);
    })();
  }

  function currentSrc(video) {
    return video.currentSrc || video.src || '';
  }

  // Jellyfin moved on (another source, the player closed): forget this playback. While liveup's
  // stream is on the element, any source liveup did not set is jellyfin-web's, and it wins.
  function watchVideo(s) {
    var video = s.video;
    s.onLoadStart = function () {
      if (session !== s || s.switching || s.attaching) return;
      if (s.ourSrc) {
        if (video.src !== s.ourSrc) letGo(s, 'Jellyfin changed the source');
        return;
      }
      var src = currentSrc(video);
      if (s.original && src && src !== s.original.src) end('source changed');
    };
    video.addEventListener('loadstart', s.onLoadStart);
    video.addEventListener('emptied', s.onLoadStart);
    // Events come too late for an emptied element: jellyfin-web's resetSrc (at the film's end, on
    // stop) clears the attribute, and hls.js sees its MediaSource close before `emptied` and
    // re-attaches over the reset. A mutation is seen before that task runs.
    s.srcObserver = new MutationObserver(function () {
      if (session === s && s.ourSrc && !s.switching && !s.attaching && video.src !== s.ourSrc) {
        letGo(s, 'Jellyfin changed the source');
      }
    });
    s.srcObserver.observe(video, { attributes: true, attributeFilter: ['src'] });
    var src = currentSrc(video);
    if (!s.original && src && src.indexOf('blob:') !== 0) s.original = { src: src };
  }

  // jellyfin-web took the element back: liveup stops, touching nothing.
  function letGo(s, reason) {
    yielded = s.itemId;
    end(reason);
  }

  // Errors of liveup's stream are liveup's: stopped on their way to the element, where
  // jellyfin-web's onError would start a transcode over liveup's own way back. Code 1 (aborted)
  // comes with every change of source; an error of a source liveup did not set is not its own.
  window.addEventListener(
    'error',
    function (event) {
      var s = session;
      if (!s || !s.video || event.target !== s.video) return;
      var ours = s.switching || (s.ourSrc && currentSrc(s.video) === s.ourSrc);
      if (!ours || s.state === 'fallback') return;
      event.stopImmediatePropagation();
      var error = s.video.error;
      if (error && error.code === 1) return;
      streamBroke(s, 'media error ' + (error ? error.code : '?'));
    },
    true
  );

  function end(reason) {
    var s = session;
    if (!s) return;
    clearTimeout(s.timer);
    clearInterval(s.stallTimer);
    removePrompt(s);
    removeNotice(s);
    removeBadge(s);
    if (s.hls) {
      try {
        s.hls.destroy();
      } catch (e) {
        /* already gone */
      }
      s.hls = null;
    }
    if (s.srcObserver) s.srcObserver.disconnect();
    if (s.video && s.onLoadStart) {
      s.video.removeEventListener('loadstart', s.onLoadStart);
      s.video.removeEventListener('emptied', s.onLoadStart);
    }
    setState(s, 'ended', { reason: reason });
    session = null;
  }

  window.addEventListener('hashchange', function () {
    if (onVideoRoute()) return;
    yielded = null;
    if (session) end('left the player');
  });

  // A direct-play URL names the item too: the fallback when no PlaybackInfo request was seen.
  document.addEventListener(
    'loadstart',
    function (event) {
      var video = event.target;
      if (!video || !video.matches || !video.matches(CONFIG.videoSelector)) return;
      var match = VIDEO_URL.exec(video.currentSrc || video.src || '');
      if (match && !session) onItem(match[1].replace(/-/g, '').toLowerCase());
    },
    true
  );

  // ---- asking liveup ------------------------------------------------------------------------

  function request(method, path, body) {
    var headers = {};
    if (body !== undefined) headers['Content-Type'] = 'text/plain';
    if (CONFIG.token) headers['X-Liveup-Token'] = CONFIG.token;
    return window
      .fetch(CONFIG.liveupUrl + path, { method: method, headers: headers, body: body, mode: 'cors' })
      .then(function (response) {
        return response.text().then(function (text) {
          var json = null;
          try {
            json = JSON.parse(text);
          } catch (e) {
            json = { message: text };
          }
          return { status: response.status, ok: response.ok, json: json };
        });
      });
  }

  function ask(s) {
    setState(s, 'asking');
    var form = { NotificationType: 'PlaybackStart', ItemId: s.itemId };
    request('POST', '/upscale-trigger', JSON.stringify(form))
      .then(function (reply) {
        if (reply.json && reply.json.error === 'jellyfin_not_configured') {
          return askWithPath(s);
        }
        return reply;
      })
      .then(function (reply) {
        if (session !== s) return;
        if (!reply.ok || !reply.json || !reply.json.job_id) {
          var why = (reply.json && (reply.json.reason || reply.json.message)) || 'HTTP ' + reply.status;
          return setState(s, 'gave_up', { reason: 'liveup refused: ' + why });
        }
        s.job = reply.json;
        setState(s, 'waiting', { jobId: reply.json.job_id, hlsUrl: reply.json.hls_url });
        poll(s);
      })
      .catch(function (error) {
        if (session === s) setState(s, 'gave_up', { reason: 'liveup unreachable: ' + error });
      });
  }

  // liveup cannot look the item up itself: ask Jellyfin (as this viewer) for its file path.
  function askWithPath(s) {
    var client = window.ApiClient;
    if (!client || !client.getItem) {
      return Promise.resolve({ status: 503, ok: false, json: { message: 'no Jellyfin API key and no ApiClient' } });
    }
    var userId = client.getCurrentUserId ? client.getCurrentUserId() : undefined;
    return Promise.resolve(client.getItem(userId, s.itemId)).then(function (item) {
      if (!item || !item.Path) {
        return { status: 404, ok: false, json: { message: 'Jellyfin did not give the file path' } };
      }
      var form = { Item: { Path: item.Path, Name: item.Name } };
      return request('POST', '/upscale-trigger', JSON.stringify(form));
    });
  }

  function poll(s) {
    if (session !== s) return;
    request('GET', '/api/jobs/' + encodeURIComponent(s.job.job_id))
      .then(function (reply) {
        if (session !== s) return;
        if (reply.ok) {
          var job = reply.json;
          if (job.profiles) s.job.profiles = job.profiles;
          var position = s.video.currentTime || 0;
          var ready = Number(job.duration_seconds) || 0;
          var complete = job.state === 'complete';
          s.info.readySeconds = ready;
          if (job.state === 'failed' || job.state === 'cancelled') {
            var why = jobEndReason(job);
            showNotice(s, 'No upscaled version of this film: ' + why);
            return setState(s, 'gave_up', { reason: why });
          }
          // Not before Jellyfin's own source plays: it would replace ours, and there would be
          // nothing to go back to.
          var started = s.video.readyState >= 2 && (s.video.currentSrc || s.video.src);
          var keeps = keepsUp(job, position);
          if (started && keeps === false) {
            // A switch the upscaler cannot keep: the stand-in's stream, or no offer at all.
            if (job.stand_in && job.stand_in.job_id) standIn(s, job);
            else notLive(s, job);
            s.timer = setTimeout(function () {
              poll(s);
            }, CONFIG.checkInterval);
            return;
          }
          // (Not before liveup has measured whether the upscaler keeps up.)
          if (started && keeps !== null && (complete || ready >= position + CONFIG.safetyMargin)) {
            return ready_(s, { position: position, readySeconds: ready, complete: complete, model: job.model });
          }
        }
        if (++s.retries >= CONFIG.maxRetries) {
          return setState(s, 'gave_up', { reason: 'not ready after ' + s.retries + ' checks' });
        }
        s.timer = setTimeout(function () {
          poll(s);
        }, CONFIG.checkInterval);
      })
      .catch(function (error) {
        if (session !== s) return;
        if (++s.retries >= CONFIG.maxRetries) {
          return setState(s, 'gave_up', { reason: 'liveup unreachable: ' + error });
        }
        s.timer = setTimeout(function () {
          poll(s);
        }, CONFIG.checkInterval);
      });
  }

  // Whether a viewer at `position` watching from now on never catches up with the upscaler: the
  // rest of the film is made, at the measured rate, before they reach its end. null while liveup
  // has not measured the rate yet.
  function keepsUp(job, position) {
    if (job.state === 'complete' || (job.live === true && job.throttled)) return true;
    if (job.live === null || job.live === undefined) return null;
    var total = Number(job.source_duration_seconds) || 0;
    var rate = Number(job.rate) || 0;
    if (!(total > 0) || !(rate > 0)) return job.live;
    var ready = Number(job.duration_seconds) || 0;
    return (total - ready) / rate <= total - position;
  }

  function clockTime(unixSeconds) {
    if (!unixSeconds) return 'later';
    return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // The film's own job cannot keep up, and liveup streams it meanwhile with a quicker model:
  // that job is the one offered from now on (the final file is still made with the film's).
  function standIn(s, job) {
    var stand = job.stand_in;
    s.job = Object.assign({}, s.job, { job_id: stand.job_id, hls_url: stand.hls_url });
    s.standIn = { model: stand.model, forModel: job.model, readyAt: job.ready_at };
    setState(s, 'standing_in', { jobId: stand.job_id, model: stand.model, forModel: job.model, readyAt: job.ready_at });
  }

  // No switch is offered: the viewer would catch up with the upscaler. Said once per playback.
  function notLive(s, job) {
    var facts = { readyAt: job.ready_at, rate: job.rate, model: job.model };
    if (s.state === 'not_live') return Object.assign(s.info, facts);
    showNotice(s, 'The upscaled version is made slower than the film plays; it will be ready at ' + clockTime(job.ready_at) + '.');
    setState(s, 'not_live', facts);
  }

  // What jellyfin-web says it does, else what its source URL says.
  function playMethod(s) {
    watchReports();
    if (playMethods[s.itemId]) return playMethods[s.itemId];
    return DIRECT_PLAY_URL.test(currentSrc(s.video)) ? 'DirectPlay' : 'not direct play';
  }

  // jellyfin-web tells the server how it plays each item (reportPlaybackStart/Progress with a
  // PlayMethod); ApiClient appears after this script runs, so this is done when first needed.
  function watchReports() {
    var client = window.ApiClient;
    if (!client || client.__liveupWatched) return;
    client.__liveupWatched = true;
    ['reportPlaybackStart', 'reportPlaybackProgress'].forEach(function (name) {
      var original = client[name];
      if (typeof original !== 'function') return;
      client[name] = function (options) {
        try {
          if (options && options.ItemId && options.PlayMethod) {
            playMethods[String(options.ItemId).replace(/-/g, '').toLowerCase()] = options.PlayMethod;
          }
        } catch (e) {
          /* never break Jellyfin's own reports */
        }
        return original.apply(this, arguments);
      };
    });
  }

  function ready_(s, facts) {
    var method = playMethod(s);
    if (method !== 'DirectPlay') {
      // Taking over a transcode would leave jellyfin-web's hls.js (or the browser's own HLS)
      // fighting liveup's, with no file to fall back to.
      return setState(s, 'gave_up', Object.assign({ reason: 'Jellyfin is not direct-playing this film (' + method + '); liveup only takes over direct play', playMethod: method }, facts));
    }
    setState(s, 'ready', facts);
    if (CONFIG.autoSwitch) startSwitch(s);
    else showPrompt(s);
  }

  // ---- the prompt ---------------------------------------------------------------------------

  function showPrompt(s) {
    removePrompt(s);
    var box = document.createElement('div');
    box.className = 'liveup-prompt';
    box.setAttribute('role', 'dialog');
    box.setAttribute('aria-label', 'Upscaled version ready');
    box.style.cssText =
      'position:fixed;right:1.5em;bottom:6em;z-index:100000;max-width:22em;padding:.9em 1em;' +
      'background:rgba(20,20,20,.92);color:#fff;border-radius:.5em;font:14px/1.4 sans-serif;' +
      'box-shadow:0 .3em 1.2em rgba(0,0,0,.5)';
    var text = document.createElement('div');
    text.textContent = s.standIn
      ? 'A quick upscale (' + s.standIn.model + ') is ready; ' + s.standIn.forModel + ' will be ready at ' +
        clockTime(s.standIn.readyAt) + '. Switch to the quick one now?'
      : 'An upscaled version of this film is ready. Switch to it?';
    text.style.marginBottom = '.7em';
    var accept = document.createElement('button');
    accept.className = 'liveup-accept';
    accept.textContent = 'Switch';
    var decline = document.createElement('button');
    decline.className = 'liveup-decline';
    decline.textContent = 'Not now';
    [accept, decline].forEach(function (button, i) {
      button.type = 'button';
      button.style.cssText =
        'margin-right:.6em;padding:.35em .9em;border:0;border-radius:.3em;cursor:pointer;font:inherit;' +
        (i === 0 ? 'background:#00a4dc;color:#fff' : 'background:#444;color:#ddd');
    });
    accept.addEventListener('click', function () {
      removePrompt(s);
      startSwitch(s);
    });
    decline.addEventListener('click', function () {
      removePrompt(s);
      setState(s, 'declined');
    });
    box.appendChild(text);
    box.appendChild(accept);
    box.appendChild(decline);
    document.body.appendChild(box);
    s.prompt = box;
    setState(s, 'prompting');
    if (CONFIG.promptTimeout > 0) {
      s.timer = setTimeout(function () {
        if (s.prompt === box) {
          removePrompt(s);
          setState(s, 'declined', { reason: 'no answer' });
        }
      }, CONFIG.promptTimeout);
    }
  }

  function removePrompt(s) {
    if (s.prompt && s.prompt.parentNode) s.prompt.parentNode.removeChild(s.prompt);
    s.prompt = null;
  }

  // ---- telling the viewer why ---------------------------------------------------------------

  function showNotice(s, text) {
    removeNotice(s);
    var box = document.createElement('div');
    box.className = 'liveup-notice';
    box.setAttribute('role', 'status');
    box.style.cssText =
      'position:fixed;right:1.5em;bottom:6em;z-index:100000;max-width:26em;padding:.9em 1em;' +
      'background:rgba(20,20,20,.92);color:#fff;border-radius:.5em;font:14px/1.4 sans-serif;' +
      'box-shadow:0 .3em 1.2em rgba(0,0,0,.5)';
    box.textContent = text;
    document.body.appendChild(box);
    s.notice = box;
    if (CONFIG.noticeTimeout > 0) {
      setTimeout(function () {
        if (s.notice === box) removeNotice(s);
      }, CONFIG.noticeTimeout);
    }
  }

  function removeNotice(s) {
    if (s.notice && s.notice.parentNode) s.notice.parentNode.removeChild(s.notice);
    s.notice = null;
  }

  // While liveup's stream plays, a corner label says which model made it.
  function showBadge(s, model) {
    removeBadge(s);
    var badge = document.createElement('div');
    badge.className = 'liveup-badge';
    badge.style.cssText =
      'position:fixed;left:1em;top:1em;z-index:100000;padding:.2em .6em;background:rgba(20,20,20,.75);' +
      'color:#fff;border-radius:.3em;font:12px/1.4 sans-serif;pointer-events:none';
    badge.textContent = s.standIn
      ? 'Upscaled: ' + model + ' (until ' + s.standIn.forModel + ' is ready at ' + clockTime(s.standIn.readyAt) + ')'
      : 'Upscaled: ' + model;
    document.body.appendChild(badge);
    s.badge = badge;
  }

  function removeBadge(s) {
    if (s.badge && s.badge.parentNode) s.badge.parentNode.removeChild(s.badge);
    s.badge = null;
  }

  function jobEndReason(job) {
    if (job.state === 'cancelled') return 'the upscaling was cancelled';
    return 'the upscaling failed' + (job.error ? ' (' + job.error + ')' : '');
  }

  // The upscaled stream broke: if that is because its job failed or was cancelled (liveup then
  // answers 410 for its playlists and segments), say so; either way, back to the original.
  function streamBroke(s, reason) {
    if (session !== s || s.state === 'fallback') return;
    var id = s.job && s.job.job_id;
    if (!id) return fallback(s, reason);
    request('GET', '/api/jobs/' + encodeURIComponent(id))
      .then(function (reply) {
        var job = reply.ok && reply.json;
        if (job && (job.state === 'failed' || job.state === 'cancelled')) {
          var why = jobEndReason(job);
          fallback(s, why);
          showNotice(s, 'Back to the original: ' + why);
        } else {
          fallback(s, reason);
        }
      })
      .catch(function () {
        fallback(s, reason);
      });
  }

  // ---- switching ----------------------------------------------------------------------------

  // liveup's own hls.js, imported as a module: window.Hls (jellyfin-web's) is never used nor set.
  function loadHlsJs() {
    if (!hlsLoad) {
      hlsLoad = import(CONFIG.hlsJsUrl).then(function (module) {
        if (!module || typeof module.default !== 'function') throw new Error(CONFIG.hlsJsUrl + ' is not hls.js');
        return module.default;
      });
      hlsLoad.catch(function () {
        hlsLoad = null;
      });
    }
    return hlsLoad;
  }

  function streamUrl(s) {
    var base = CONFIG.liveupUrl + '/hls/' + encodeURIComponent(s.job.job_id);
    if (CONFIG.playlist === 'master') {
      var profile = CONFIG.profile || screenProfile();
      var known = s.job.profiles || [];
      return base + '/master.m3u8' + (known.indexOf(profile) >= 0 ? '?profile=' + encodeURIComponent(profile) : '');
    }
    if (CONFIG.playlist === 'index') return base + '/index.m3u8';
    return s.job.hls_url;
  }

  // The kind of client by its screen's longer side in device pixels.
  function screenProfile() {
    var pixels = Math.max(screen.width || 0, screen.height || 0) * (window.devicePixelRatio || 1);
    if (pixels >= 2560) return 'tv';
    if (pixels >= 1280) return 'laptop';
    return 'phone';
  }

  function startSwitch(s) {
    if (session !== s || s.switching || s.state === 'switched') return;
    var video = s.video;
    s.original = { src: video.currentSrc || video.src || '' };
    s.switching = true;
    var position = video.currentTime;
    var wasPaused = video.paused;
    setState(s, 'switching', { position: position, wasPaused: wasPaused });
    var url = streamUrl(s);
    var useHlsJs = !!(window.MediaSource || window.ManagedMediaSource);
    var attach = useHlsJs
      ? loadHlsJs().then(function (Hls) {
          if (!Hls.isSupported()) throw new Error('hls.js is not supported here');
          return attachHlsJs(s, Hls, url, position);
        })
      : video.canPlayType('application/vnd.apple.mpegurl')
        ? Promise.resolve(attachNative(s, url))
        : Promise.reject(new Error('this browser plays no HLS'));
    attach
      .then(function () {
        return resumeAt(s, position, wasPaused);
      })
      .then(function () {
        if (session !== s || s.state === 'fallback') return;
        s.switching = false;
        watchStalls(s);
        var model = (s.standIn && s.standIn.model) || s.info.model || '';
        if (model) showBadge(s, model);
        setState(s, 'switched', {
          model: model,
          standIn: !!s.standIn,
          position: position,
          resumedAt: video.currentTime,
          videoWidth: video.videoWidth,
          videoHeight: video.videoHeight,
          engine: s.hls ? 'hls.js' : 'native',
          engineVersion: s.hls ? s.hls.constructor.version : undefined,
        });
      })
      .catch(function (error) {
        streamBroke(s, String((error && error.message) || error));
      });
  }

  function attachHlsJs(s, Hls, url, position) {
    return new Promise(function (resolve, reject) {
      var hls = new Hls(
        Object.assign({ autoStartLoad: false, startPosition: position }, CONFIG.hlsConfig)
      );
      s.hls = hls;
      // hls.js sets the element's source itself (an object URL), again when it recovers.
      hls.on(Hls.Events.MEDIA_ATTACHING, function () {
        s.attaching = true;
      });
      hls.on(Hls.Events.MEDIA_ATTACHED, function () {
        s.attaching = false;
        s.ourSrc = s.video.src;
      });
      hls.on(Hls.Events.MANIFEST_PARSED, function () {
        log('manifest parsed; loading from', position);
        hls.startLoad(position);
        resolve();
      });
      hls.on(Hls.Events.ERROR, function (event, data) {
        log('hls.js error', data && data.type, data && data.details, data && data.fatal ? 'fatal' : '');
        // With a single rendition hls.js 1.7 does not give up on a fragment's 4xx at once: it
        // retries a VOD fragment six times with back-off (base-stream-controller.ts, the
        // no-alternate branch) and skips a live one as a gap. liveup's 410 means the job ended
        // for good, so the upscaled stream ends at the first one.
        var gone = !!(data && data.response && data.response.code === 410);
        if (!data || (!data.fatal && !gone)) return;
        var reason = gone ? 'the upscaled stream is gone (HTTP 410)' : data.type + ': ' + data.details;
        reject(new Error(reason));
        if (s.hls) s.hls.stopLoad();
        streamBroke(s, reason);
      });
      hls.loadSource(url);
      hls.attachMedia(s.video);
    });
  }

  // Its errors reach liveup through the capturing listener on window.
  function attachNative(s, url) {
    s.video.src = url;
    s.ourSrc = s.video.src;
  }

  // Waits for the new source to have a picture, puts it at `position`, restores play/pause.
  function resumeAt(s, position, wasPaused) {
    var video = s.video;
    return new Promise(function (resolve, reject) {
      log('waiting for a picture at', position, 'within', CONFIG.startTimeout, 'ms');
      var timeout = setTimeout(function () {
        log('no picture in time');
        cleanup();
        reject(new Error('the upscaled stream did not start in time'));
      }, CONFIG.startTimeout);
      function cleanup() {
        clearTimeout(timeout);
        video.removeEventListener('canplay', onCanPlay);
        video.removeEventListener('seeked', onCanPlay);
      }
      function onCanPlay(event) {
        log('resume', event && event.type, video.readyState, video.currentTime, video.currentSrc);
        if (session !== s || s.state === 'fallback') {
          cleanup();
          return resolve();
        }
        if (Math.abs(video.currentTime - position) > 0.25) {
          if (!video.seeking) video.currentTime = position;
          return;
        }
        if (video.readyState < 3) return;
        cleanup();
        if (wasPaused) {
          video.pause();
          return resolve();
        }
        var played = video.play();
        if (played && played.then) played.then(resolve, resolve);
        else resolve();
      }
      video.addEventListener('canplay', onCanPlay);
      video.addEventListener('seeked', onCanPlay);
      if (video.readyState >= 3) onCanPlay();
    });
  }

  // A stream that stops delivering (segments that never come) is no fatal error to hls.js: it
  // waits. The viewer should not.
  function watchStalls(s) {
    var video = s.video;
    var last = video.currentTime;
    var since = Date.now();
    s.stallTimer = setInterval(function () {
      if (session !== s || s.state !== 'switched') return clearInterval(s.stallTimer);
      if (video.paused || video.ended || video.currentTime !== last) {
        last = video.currentTime;
        since = Date.now();
      } else if (Date.now() - since > CONFIG.stallTimeout) {
        clearInterval(s.stallTimer);
        streamBroke(s, 'the upscaled stream stalled at ' + last.toFixed(1) + ' s');
      }
    }, 500);
  }

  // Back to the original source at the current position, in the same play/pause state.
  function fallback(s, reason) {
    if (session !== s || s.state === 'fallback') return;
    var video = s.video;
    var position = s.state === 'switching' ? s.info.position : video.currentTime;
    var wasPaused = s.state === 'switching' ? s.info.wasPaused : video.paused;
    s.switching = true;
    removeBadge(s);
    setState(s, 'fallback', { reason: reason, position: position });
    if (s.hls) {
      try {
        s.hls.destroy();
      } catch (e) {
        /* already gone */
      }
      s.hls = null;
    }
    s.ourSrc = null;
    if (!s.original || !s.original.src) {
      return setState(s, 'failed', { reason: reason + '; no original source to go back to' });
    }
    video.src = s.original.src;
    video.addEventListener(
      'loadedmetadata',
      function () {
        video.currentTime = position;
        s.switching = false;
        if (!wasPaused) {
          var played = video.play();
          if (played && played.catch) played.catch(function () {});
        }
        setState(s, 'fallback', { restoredAt: position });
      },
      { once: true }
    );
  }
})();

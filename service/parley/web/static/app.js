// The Parley page: the microphone in, the agent's audio out, the session's
// events live, through the WebSocket bridge of `parley web` (protocol in
// parley/web/protocol.py). Everything it loads comes from this server.

const INPUT_RATE = 16000; // what the microphone is resampled to: the STT's rate, the least to send
const OUTPUT_RATES = [8000, 16000, 24000, 48000];
const CHUNK_MS = 20;
const JITTER_TARGET_MS = 80;
const JITTER_MAX_MS = 1000;
const MAX_UNSENT_BYTES = INPUT_RATE * 2; // a second of audio waiting on the socket: drop, do not queue
const VOICE_RMS = 0.02; // a microphone chunk above this (-34 dBFS) counts as your voice
const MAX_LINES = 300;
const STAGES = ['stt', 'llm', 'tts'];

const $ = (id) => document.getElementById(id);

const page = {
  ws: null,
  audio: null, // { context, stream, capture, playback, analyser }
  sessionName: '',
  closedReason: '',
  layers: { background: false, thinking: false },
  lastVoiceAt: null, // audio-clock time of your last voiced microphone chunk
  spokeSinceAgent: false,
  latencies: [],
  unsentDrops: 0,
  serverAddress: '',
};

// ---- states and banners -------------------------------------------------

function setState(state) {
  document.body.dataset.state = state;
  const live = state === 'live';
  $('start').disabled = !['ready', 'closed', 'mic-denied', 'error'].includes(state);
  $('hangup').disabled = !live;
  for (const id of ['say', 'interrupt', 'background', 'thinking']) $(id).disabled = !live;
  for (const id of [...STAGES, 'instructions', 'extra-config']) $(id).disabled = live || state === 'connecting';
}

function showBanner(kind, text) {
  const banner = $('banner');
  banner.className = `banner ${kind}`;
  banner.dataset.kind = kind;
  banner.textContent = text;
  banner.hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
  $('banner').dataset.kind = '';
}

function unreachable(detail) {
  showBanner('unreachable', `Server not reachable: the Parley server at ${page.serverAddress || 'its address'} `
    + `does not answer (${detail}). Start it with \`make run\`, then press Start again.`);
  setState('ready');
}

// ---- status and provider choice ----------------------------------------

async function loadStatus() {
  let status;
  try {
    status = await (await fetch('/api/status', { cache: 'no-store' })).json();
  } catch (error) {
    $('server-status').textContent = 'parley web not reachable';
    $('server-status').className = 'pill bad';
    showBanner('unreachable', `Server not reachable: this page's own server (parley web) does not answer (${error.message}).`);
    setState('unreachable');
    return;
  }
  page.serverAddress = status.server.address;
  $('version').textContent = `parley ${status.version}`;
  const params = new URLSearchParams(location.search);
  for (const stage of STAGES) fillChoices($(stage), status.providers[stage], params.get(stage));
  if (params.get('instructions')) $('instructions').value = params.get('instructions');
  if (params.get('config')) $('extra-config').value = params.get('config');
  const serving = status.server.status === 'SERVING';
  $('server-status').textContent = serving ? `server ${status.server.address}: serving`
    : `server ${status.server.address}: ${status.server.status.toLowerCase().replace('_', ' ')}`;
  $('server-status').className = `pill ${serving ? 'ok' : 'bad'}`;
  setState('ready');
  if (!serving) unreachable(status.server.detail || status.server.status);
}

function fillChoices(select, providers, chosen) {
  select.replaceChildren();
  const fallback = providers.find((p) => p.default);
  select.append(new Option(`server default (${fallback ? fallback.name : '?'})`, ''));
  for (const provider of providers) {
    const notes = [provider.stand_in ? 'stand-in' : '', provider.extra ? `needs the ${provider.extra} extra` : '']
      .filter(Boolean).join(', ');
    select.append(new Option(notes ? `${provider.name} (${notes})` : provider.name, provider.name));
  }
  if (chosen !== null && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function sessionConfig() {
  let extra;
  try {
    extra = JSON.parse($('extra-config').value || '{}');
  } catch (error) {
    throw new Error(`the session config is not JSON: ${error.message}`);
  }
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new Error('the session config must be a JSON object');
  const config = { instructions: $('instructions').value, ...extra };
  for (const stage of STAGES) {
    if (!$(stage).value) continue;
    config.providers = { ...(config.providers || {}) };
    config.providers[stage] = { ...(config.providers[stage] || {}), name: $(stage).value };
  }
  return config;
}

// ---- audio ----------------------------------------------------------------

async function openAudio() {
  const context = new AudioContext({ latencyHint: 'interactive' });
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    await context.close();
    throw error;
  }
  await context.resume();
  await context.audioWorklet.addModule('/static/capture-worklet.js');
  await context.audioWorklet.addModule('/static/playback-worklet.js');
  const outputRate = OUTPUT_RATES.includes(context.sampleRate) ? context.sampleRate : 24000;

  const capture = new AudioWorkletNode(context, 'parley-capture', {
    numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { targetRate: INPUT_RATE, chunkMs: CHUNK_MS },
  });
  context.createMediaStreamSource(stream).connect(capture);
  capture.connect(context.destination); // silent: it only needs to be pulled by the graph
  capture.port.onmessage = (event) => onMicrophoneChunk(event.data);

  const playback = new AudioWorkletNode(context, 'parley-playback', {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { sourceRate: outputRate, targetMs: JITTER_TARGET_MS, maxMs: JITTER_MAX_MS },
  });
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  playback.connect(analyser);
  analyser.connect(context.destination);
  playback.port.onmessage = (event) => onPlaybackMessage(event.data);

  page.audio = { context, stream, capture, playback, analyser, outputRate, samples: new Float32Array(analyser.fftSize) };
  requestAnimationFrame(drawAgentLevel);
  return page.audio;
}

async function closeAudio() {
  const audio = page.audio;
  page.audio = null;
  if (!audio) return;
  for (const track of audio.stream.getTracks()) track.stop();
  await audio.context.close();
  $('mic-level').value = 0;
  $('agent-level').value = 0;
}

function onMicrophoneChunk({ pcm, rms, time }) {
  $('mic-level').value = Math.min(1, Math.sqrt(rms) * 1.5);
  if (rms >= VOICE_RMS) {
    page.lastVoiceAt = time;
    page.spokeSinceAgent = true;
  }
  const ws = page.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || document.body.dataset.state !== 'live') return;
  if (ws.bufferedAmount > MAX_UNSENT_BYTES) {
    page.unsentDrops += 1; // the link is slower than real time: drop, never queue without bound
    return;
  }
  ws.send(pcm);
}

function onPlaybackMessage(message) {
  if (message.type === 'voice' && page.spokeSinceAgent && page.lastVoiceAt !== null) {
    const outputLatency = page.audio ? (page.audio.context.outputLatency || 0) : 0;
    const ms = Math.round((message.time - page.lastVoiceAt + outputLatency) * 1000);
    page.spokeSinceAgent = false;
    page.latencies = [ms, ...page.latencies].slice(0, 5);
    $('latency').textContent = `${ms} ms`;
    $('latency').dataset.ms = String(ms);
    $('latency-history').textContent = page.latencies.length > 1 ? `(before: ${page.latencies.slice(1).join(', ')} ms)` : '';
  } else if (message.type === 'stats') {
    $('buffer-stats').textContent = `jitter buffer ${Math.round(message.bufferedMs)} ms, underruns ${message.underruns}, `
      + `dropped ${Math.round(message.dropped / (page.audio ? page.audio.context.sampleRate : 1) * 1000)} ms`
      + (page.unsentDrops ? `, microphone chunks dropped ${page.unsentDrops}` : '');
  }
}

function agentPeak() {
  const audio = page.audio;
  if (!audio) return 0;
  audio.analyser.getFloatTimeDomainData(audio.samples);
  let peak = 0;
  for (const v of audio.samples) peak = Math.max(peak, Math.abs(v));
  return peak;
}

function drawAgentLevel() {
  if (!page.audio) return;
  $('agent-level').value = Math.min(1, Math.sqrt(agentPeak()));
  requestAnimationFrame(drawAgentLevel);
}

// ---- the session ------------------------------------------------------------

async function start() {
  hideBanner();
  let config;
  try {
    config = sessionConfig();
  } catch (error) {
    showBanner('error', error.message);
    return;
  }
  setState('connecting');
  page.closedReason = '';
  let audio;
  try {
    audio = await openAudio();
  } catch (error) {
    if (error.name === 'NotAllowedError' || error.name === 'SecurityError') {
      showBanner('mic-denied', 'Microphone denied: this page may not use your microphone. Allow it (the icon in '
        + 'the address bar, or the site settings), then press Start again.');
    } else if (error.name === 'NotFoundError') {
      showBanner('mic-denied', 'No microphone found: plug one in, then press Start again.');
    } else {
      showBanner('mic-denied', `The microphone could not be opened: ${error.name}: ${error.message}`);
    }
    setState('mic-denied');
    return;
  }

  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  page.ws = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    ws.send(JSON.stringify({ type: 'start', config, input_rate: INPUT_RATE, output_rate: audio.outputRate }));
  };
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') onFrame(JSON.parse(event.data));
    else if (page.audio) page.audio.playback.port.postMessage({ type: 'frame', pcm: event.data }, [event.data]);
  };
  ws.onclose = (event) => onSocketClosed(ws, opened, event);
}

function onSocketClosed(ws, opened, event) {
  if (page.ws !== ws) return;
  page.ws = null;
  const wasLive = document.body.dataset.state === 'live';
  closeAudio();
  if (!opened) {
    showBanner('unreachable', 'Server not reachable: this page\'s own server (parley web) refused or dropped the '
      + 'connection. Is `parley web` still running?');
    setState('ready');
  } else if (wasLive) {
    const reason = page.closedReason || event.reason || `the connection closed (${event.code})`;
    showBanner('closed', `Session closed: ${reason}. Press Start talking for a new session.`);
    setState('closed');
  } else if (document.body.dataset.state === 'connecting') {
    setState('ready');
  }
  $('agent-state').textContent = '—';
  $('user-state').textContent = '—';
  for (const name of ['background', 'thinking']) setLayer(name, false);
}

function onFrame(frame) {
  if (frame.type === 'session') {
    page.sessionName = frame.session.name;
    $('session-name').textContent = frame.session.name;
    $('transcript').replaceChildren();
    $('events').replaceChildren();
    setState('live');
  } else if (frame.type === 'event') {
    onEvent(frame);
  } else if (frame.type === 'result') {
    if (frame.request === 'background' || frame.request === 'thinking') {
      const status = frame.result.background_audio || frame.result.thinking_audio || {};
      setLayer(frame.request, Boolean(status.playing));
    }
  } else if (frame.type === 'error') {
    onError(frame);
  } else if (frame.type === 'closed') {
    page.closedReason = frame.reason;
  }
}

function onError(frame) {
  addLine(`error ${frame.request || ''} ${frame.code}: ${frame.message}`, 'error');
  if (frame.request === 'start') {
    if (frame.code === 'UNAVAILABLE' || frame.code === 'DEADLINE_EXCEEDED') unreachable(`${frame.code}: ${frame.message}`);
    else showBanner('error', `The session could not start: ${frame.code}: ${frame.message}`);
    const ws = page.ws;
    page.ws = null;
    if (ws) ws.close();
    closeAudio();
    if (document.body.dataset.state === 'connecting') setState('ready');
    return;
  }
  showBanner('error', `${frame.request || 'request'} failed: ${frame.code}: ${frame.message}`);
}

const short = (value, prefix) => (value || '').replace(prefix, '').toLowerCase();

function onEvent(frame) {
  addLine(`#${frame.sequence} ${frame.kind} ${frame.text}`);
  const body = frame.event[frame.kind] || {};
  if (frame.kind === 'agent_state_changed') {
    $('agent-state').textContent = short(body.new_state, 'AGENT_STATE_');
  } else if (frame.kind === 'user_state_changed') {
    $('user-state').textContent = short(body.new_state, 'USER_STATE_');
  } else if (frame.kind === 'transcript') {
    if (body.is_final) {
      $('interim').textContent = '';
      if (body.text) addTurn('you', body.text);
    } else {
      $('interim').textContent = body.text ? `(hearing) ${body.text}` : '';
    }
  } else if (frame.kind === 'utterance_updated') {
    showUtterance(body.utterance);
  } else if (frame.kind === 'clear_audio') {
    if (page.audio) page.audio.playback.port.postMessage({ type: 'clear' });
  } else if (frame.kind === 'metrics_updated' && body.turn && body.turn.e2e_latency_ms) {
    $('server-latency').textContent = `(server: end of turn to first audio out ${Math.round(body.turn.e2e_latency_ms)} ms)`;
  } else if (frame.kind === 'session_closed') {
    page.closedReason = body.reason || 'closed';
  }
}

function showUtterance(utterance) {
  let item = $('transcript').querySelector(`li[data-utterance="${CSS.escape(utterance.id)}"]`);
  if (!item) item = addTurn('agent', '', utterance.id);
  const state = short(utterance.state, 'UTTERANCE_STATE_');
  item.dataset.state = state;
  item.firstChild.textContent = utterance.text || '…';
  const badge = item.querySelector('.badge');
  badge.className = `badge ${state}`;
  const why = utterance.end_reason ? ` (${utterance.end_reason.toLowerCase().replaceAll('_', ' ')})` : '';
  badge.textContent = state === 'interrupted' ? `interrupted${why}; heard: “${utterance.heard_text || ''}”`
    : `${state}${why}`;
}

function addTurn(who, text, utteranceId) {
  const item = document.createElement('li');
  item.className = who;
  item.append(document.createTextNode(text));
  if (utteranceId) {
    item.dataset.utterance = utteranceId;
    const badge = document.createElement('span');
    badge.className = 'badge';
    item.append(badge);
  }
  appendBounded($('transcript'), item);
  return item;
}

function addLine(text, kind = '') {
  const item = document.createElement('li');
  item.textContent = text;
  if (kind) item.className = kind;
  appendBounded($('events'), item);
}

function appendBounded(list, item) {
  list.append(item);
  while (list.children.length > MAX_LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function send(message) {
  if (page.ws && page.ws.readyState === WebSocket.OPEN) page.ws.send(JSON.stringify(message));
}

function setLayer(name, playing) {
  page.layers[name] = playing;
  $(name).setAttribute('aria-pressed', String(playing));
}

// ---- wiring -----------------------------------------------------------------

$('start').addEventListener('click', start);
$('hangup').addEventListener('click', () => send({ type: 'close' }));
$('say-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('say-text').value.trim();
  if (!text) return;
  send({ type: 'say', text });
  $('say-text').value = '';
});
$('interrupt').addEventListener('click', () => send({ type: 'interrupt' }));
for (const name of ['background', 'thinking']) {
  $(name).addEventListener('click', () => send({ type: name, play: !page.layers[name] }));
}

// What the page's tests read (and a console user may): the agent's output level right now.
window.parley = { agentPeak, page };

loadStatus();

// A Parley client in Node.js (@grpc/grpc-js + @grpc/proto-loader, loading
// the .proto files of proto/ at run time: no generated code).
//
// It starts a session, streams a WAV file as the caller's audio in real time,
// prints every event as it arrives, waits for the agent's spoken reply, then
// says a long sentence and interrupts it, closes the session, and writes all
// the agent audio it received to a WAV file.
//
//   node examples/node/client.js --wav examples/audio/question.wav --out reply.wav
//   node examples/node/client.js --help
//
// Event lines look like `event <sequence> <kind> <details>`, where kind is
// the name of the field set in SessionEvent's `event` oneof.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const CHUNK_MS = 20;
const LONG_TEXT = 'Let me tell you a long story about the sea, the wind, and a small boat that sailed ' +
  'from one harbour to the next for many, many years.';
const FINAL = ['UTTERANCE_STATE_PLAYED', 'UTTERANCE_STATE_INTERRUPTED', 'UTTERANCE_STATE_FAILED'];

function loadService(protoDir) {
  const definition = protoLoader.loadSync('parley/v1/agent_session_service.proto', {
    includeDirs: [protoDir],
    keepCase: true, // field names as in the .proto (snake_case)
    longs: String,
    enums: String, // enum values by name
    defaults: true,
    oneofs: true, // a virtual property names the field set in each oneof
  });
  return grpc.loadPackageDefinition(definition).parley.v1.AgentSessionService;
}

// 'UTTERANCE_STATE_PLAYED' -> 'played', given the enum's prefix.
const short = (name, prefix) => name.slice(prefix.length).toLowerCase();

function describe(event) {
  const kind = event.event;
  const body = event[kind];
  let detail;
  if (kind === 'agent_state_changed') {
    detail = `${short(body.old_state, 'AGENT_STATE_')} -> ${short(body.new_state, 'AGENT_STATE_')}`;
  } else if (kind === 'user_state_changed') {
    detail = `${short(body.old_state, 'USER_STATE_')} -> ${short(body.new_state, 'USER_STATE_')}`;
  } else if (kind === 'transcript') {
    detail = `${body.is_final ? 'final' : 'interim'} ${JSON.stringify(body.text)}`;
  } else if (kind === 'utterance_updated') {
    const u = body.utterance;
    detail = `${u.id} ${short(u.source, 'UTTERANCE_SOURCE_')} ${short(u.state, 'UTTERANCE_STATE_')} ${JSON.stringify(u.text)}`;
  } else if (kind === 'agent_text') {
    detail = `${body.utterance_id} ${JSON.stringify(body.text)}`;
  } else if (kind === 'tool_call_requested' || kind === 'tool_call_completed') {
    detail = `${body.call.name}(${body.call.arguments_json}) id ${body.call.id}`;
  } else if (kind === 'clear_audio') {
    detail = `drop buffered audio of ${body.utterance_id}`;
  } else if (kind === 'interruption') {
    detail = `${short(body.kind, 'INTERRUPTION_KIND_')} ${body.utterance_id}`;
  } else if (kind === 'metrics_updated') {
    detail = `end to end ${Math.round(body.turn.e2e_latency_ms)} ms`;
  } else if (kind === 'warning') {
    detail = `${body.reason}: ${body.message}`;
  } else if (kind === 'session_closed') {
    detail = JSON.stringify(body.reason);
  } else { // wake_up, frames_dropped: their fields as name=value
    detail = Object.entries(body).map(([name, value]) => `${name}=${value}`).join(' ');
  }
  return `event ${event.sequence} ${kind} ${detail}`;
}

// 16-bit PCM WAV in and out (RIFF chunks; enough for the files this example handles).
function readWav(file) {
  const data = fs.readFileSync(file);
  if (data.toString('ascii', 0, 4) !== 'RIFF' || data.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error(`${file}: not a WAV file`);
  }
  let format = null;
  for (let at = 12; at + 8 <= data.length;) {
    const id = data.toString('ascii', at, at + 4);
    const size = data.readUInt32LE(at + 4);
    if (id === 'fmt ') {
      format = { channels: data.readUInt16LE(at + 10), rate: data.readUInt32LE(at + 12), bits: data.readUInt16LE(at + 22) };
    } else if (id === 'data') {
      if (!format || format.bits !== 16) throw new Error(`${file}: need 16-bit PCM`);
      return { ...format, pcm: data.subarray(at + 8, at + 8 + size) };
    }
    at += 8 + size + (size % 2);
  }
  throw new Error(`${file}: no data chunk`);
}

function writeWav(file, pcm, rate) {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVEfmt ', 8, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(pcm.length, 40);
  fs.writeFileSync(file, Buffer.concat([header, pcm]));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The metadata of every call. With authentication on, it carries the bearer token (PARLEY_TOKEN).
// A call about a session names it in x-parley-session: behind a proxy that reaches the server
// process that owns the session (a single server ignores it).
const metadataFor = (session) => {
  const metadata = new grpc.Metadata();
  if (process.env.PARLEY_TOKEN) metadata.set('authorization', `Bearer ${process.env.PARLEY_TOKEN}`);
  if (session) metadata.set('x-parley-session', session);
  return metadata;
};

// Unary calls as promises.
const unary = (client, method, request) => new Promise((resolve, reject) => {
  client[method](request, metadataFor(request.session), (error, response) => (error ? reject(error) : resolve(response)));
});

const USAGE = `usage: node examples/node/client.js --wav FILE [options]

Starts a Parley session, streams FILE as the caller's voice in real time,
prints the session's events, waits for the agent's reply, says a long
sentence and interrupts it, closes the session, writes the agent's audio.

options:
  --wav FILE       the caller's audio: a 16-bit PCM WAV, 8..48 kHz (required)
  --out FILE       where to write the agent's audio (default reply.wav)
  --address HOST:PORT
                   the server (env PARLEY_ADDRESS; default 127.0.0.1:50051)
  --timeout S      seconds to wait for the reply (default 60)
  --proto DIR      where the .proto files are (default: this repository's proto/)
  -h, --help       show this help and exit

With authentication on, the bearer token is read from PARLEY_TOKEN.`;

async function main() {
  const { values: args } = parseArgs({
    options: {
      address: { type: 'string', default: process.env.PARLEY_ADDRESS || '127.0.0.1:50051' },
      wav: { type: 'string' },
      out: { type: 'string', default: 'reply.wav' },
      timeout: { type: 'string', default: '60' },
      proto: { type: 'string', default: path.join(__dirname, '..', '..', 'proto') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (!args.wav) throw new Error(`--wav is required\n\n${USAGE}`);
  const timeoutMs = Number(args.timeout) * 1000;
  const input = readWav(args.wav);

  const AgentSessionService = loadService(args.proto);
  const client = new AgentSessionService(args.address, grpc.credentials.createInsecure());

  const config = { instructions: 'You are a helpful voice assistant. Answer in one sentence.' };
  const { session } = await unary(client, 'Start', { config });
  const outRate = session.config.output_format.sample_rate_hz; // defaults are filled in
  console.log(`started ${session.name} (output ${outRate} Hz)`);

  // The audio stream: frames are recorded, events printed and kept.
  const frames = [];
  const events = [];
  let changed = () => {};
  const call = client.StreamAudio(metadataFor(session.name));
  const ended = new Promise((resolve, reject) => {
    call.on('data', (response) => {
      if (response.message === 'audio') {
        frames.push(response.audio.pcm);
      } else {
        events.push(response.event);
        console.log(describe(response.event));
      }
      changed();
    });
    call.on('end', resolve);
    call.on('error', reject);
  });
  call.write({ config: { session: session.name, input_format: { sample_rate_hz: input.rate, channels: input.channels } } });

  // Wait until some utterance event matches; reject after timeoutMs.
  const until = (source, states) => new Promise((resolve, reject) => {
    const check = () => {
      const found = events.find((e) => e.event === 'utterance_updated'
        && e.utterance_updated.utterance.source === source && states.includes(e.utterance_updated.utterance.state));
      if (found) { clearTimeout(timer); changed = () => {}; resolve(found.utterance_updated.utterance); }
    };
    const timer = setTimeout(() => reject(new Error(`no ${source} in ${states} within ${args.timeout} s`)), timeoutMs);
    changed = check;
    check();
  });

  // The file in 20 ms chunks at real-time pace, then silence until told to stop.
  let keepGoing = true;
  const bytesPerChunk = input.rate * input.channels * 2 * CHUNK_MS / 1000;
  const sending = (async () => {
    const start = Date.now();
    const silence = Buffer.alloc(bytesPerChunk);
    for (let n = 0; n * bytesPerChunk < input.pcm.length || keepGoing; n += 1) {
      const chunk = input.pcm.subarray(n * bytesPerChunk, (n + 1) * bytesPerChunk);
      call.write({ audio: { pcm: chunk.length ? chunk : silence } });
      await sleep(Math.max(0, start + (n + 1) * CHUNK_MS - Date.now()));
    }
  })();

  const reply = await until('UTTERANCE_SOURCE_REPLY', FINAL);
  console.log(`reply ${short(reply.state, 'UTTERANCE_STATE_')}: ${JSON.stringify(reply.text)}`);

  await unary(client, 'Say', { session: session.name, text: LONG_TEXT });
  await until('UTTERANCE_SOURCE_SAY', ['UTTERANCE_STATE_SPEAKING']);
  await sleep(500); // let the caller hear the start of it
  const { interrupted } = await unary(client, 'Interrupt', { session: session.name });
  console.log(`interrupted ${JSON.stringify(interrupted.map((u) => u.id))}; heard ${JSON.stringify(interrupted[0]?.heard_text ?? '')}`);

  keepGoing = false;
  await sending;
  const closed = await unary(client, 'Close', { session: session.name, reason: 'example done' });
  await ended; // the stream ends after the session_closed event
  console.log(`closed: ${JSON.stringify(closed.session.close_reason)}`);
  client.getChannel().close(); // not client.close(): on this client that name is the Close rpc

  const pcm = Buffer.concat(frames);
  writeWav(args.out, pcm, outRate);
  console.log(`wrote ${args.out}: ${(pcm.length / 2 / outRate).toFixed(1)} s at ${outRate} Hz`);
  return reply.state === 'UTTERANCE_STATE_PLAYED' ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (error) => {
  console.error(error.message ?? error);
  process.exitCode = 1;
});

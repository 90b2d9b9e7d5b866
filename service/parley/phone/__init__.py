"""Phone calls: a telephony provider's WebSocket media stream bridged onto a Parley session.

- `protocol`  the provider's JSON messages (connected / start / media / mark / dtmf / stop; media / mark / clear)
- `bridge`    one call: a WebSocket <-> a session's StreamAudio, over gRPC (`PhoneCall`, `PhoneSettings`)
- `app`       `PhoneBridge`, `phone_routes(bridge)` to mount on any Starlette app, `phone_app(settings)`
- `serve`     `parley phone`: the app on its own port
"""

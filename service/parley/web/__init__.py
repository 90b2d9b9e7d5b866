"""`parley web`: a page that talks to an agent, and the WebSocket bridge behind it.

Browsers cannot open gRPC bidi streams, so the bridge is itself a gRPC
client of a Parley server (same contract, same bearer token): one browser
tab is one session and one StreamAudio call. `create_app` builds the ASGI
app; other bridges (a phone media stream, say) mount their routes on it.
"""

from parley.web.app import create_app
from parley.web.client import ParleyClient
from parley.web.settings import WebSettings

__all__ = ["ParleyClient", "WebSettings", "create_app"]

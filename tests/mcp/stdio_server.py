"""The tests' weather MCP server over stdio, as an operator-allowed command; writes its pid to $PID_FILE."""

from __future__ import annotations

import os
from pathlib import Path

from tests.mcp.conftest import WeatherServer, weather_app

if __name__ == "__main__":
    Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
    weather_app(WeatherServer("stdio")).run()

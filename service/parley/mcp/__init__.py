"""MCP servers as a session's tool source: the server lists and calls their tools itself."""

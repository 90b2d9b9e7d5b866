"""The README's configuration table stays true to the server's settings."""

from __future__ import annotations

import re
from dataclasses import fields

from parley.settings import ServerSettings, env_name
from tests.examples.conftest import ROOT


def test_every_server_setting_is_documented() -> None:
    rows = re.findall(r"^\| `(--[a-z-]+)` \| `(PARLEY_[A-Z_]+)` \|\s*`?([^|`]*?)`?\s*\|", (ROOT / "README.md").read_text(),
                      re.MULTILINE)
    documented = {flag: (env, default.strip()) for flag, env, default in rows}
    for f in fields(ServerSettings):
        flag = "--" + f.name.replace("_", "-")
        assert flag in documented, f"README.md: no row for {flag}"
        env, default = documented[flag]
        assert env == env_name(f.name)
        assert default == ("" if f.default == "" else str(f.default).removesuffix(".0")), flag
    assert len(documented) == len(fields(ServerSettings)), "README.md documents a flag the server does not have"

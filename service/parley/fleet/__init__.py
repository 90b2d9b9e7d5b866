"""Scale-out: worker processes, the proxy's routing header and its configuration."""

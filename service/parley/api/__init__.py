"""gRPC servicers: thin; convert proto <-> domain and map errors to status."""

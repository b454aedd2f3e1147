"""The network: the V2 protocol, its client, the embedded server and the MLServer runtime."""

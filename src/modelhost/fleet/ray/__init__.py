"""The Ray fleet provider (`fleet = "ray"`, extra `modelhost[ray]`): instances as Ray actors
on the nodes of a Ray cluster. `placement` is the pure decision (what to ask Ray for, which
node), `actor` runs on a node, `provider` is the gateway's side."""

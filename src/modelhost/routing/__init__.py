"""Per-invocation routing from RoutingTable snapshots; never imports control."""

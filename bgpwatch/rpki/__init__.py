"""RPKI origin validation: a VRP table (`bgpwatch.rpki.vrps`) fed by RTR caches (`bgpwatch.rpki.rtr`)."""

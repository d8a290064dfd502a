"""The BGP speaker side: ExaBGP children, their configuration, and the relay that feeds bgpwatch."""

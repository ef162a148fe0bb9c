"""Every instrument the runner exposes (`instruments`) and the metrics reference made from it."""

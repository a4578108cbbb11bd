"""Loopback exchange simulator: real websocket and HTTP servers on 127.0.0.1 that speak
each supported venue's protocol, driven by a synthetic order-flow model, with fault
injection.  Used by `hftbook run` (simulated mode) and by the connector tests."""

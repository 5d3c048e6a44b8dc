"""Pure protocol clients for the upstreams (WeChat Pay v2/v3, UMF). No Django imports: services translate
between models and these dataclasses, and the sandbox reuses the server-side helpers."""

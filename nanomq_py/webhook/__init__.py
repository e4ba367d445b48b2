"""WebHook integration: MQTT events -> rules -> JSON bodies -> HTTP POSTs.

    from nanomq_py.webhook import WebHook
    hook = WebHook(settings.webhook)   # a BrokerEvents consumer
    hook.start()                       # HTTP connection pool + pool_size worker greenlets
    hook.stop()                        # bounded drain, the rest is counted as dropped
    hook.counters()                    # {"queued", "delivered", "retried", "failed", "dropped",
                                       #  "in_flight", "waiting"}

Modules: rules (which events fire), bodies and encoding (what is sent),
dispatcher (queue, workers, retries, counters), http_sender (urllib3 on gevent
sockets), hook (the broker-facing methods).

Import this package only when a webhook is configured: it imports urllib3.
It monkey-patches nothing and needs nothing patched: its HTTP connections are
opened on gevent's cooperative sockets directly (see http_sender).
"""

from .hook import WebHook

__all__ = ["WebHook"]

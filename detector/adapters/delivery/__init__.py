"""Alert delivery as signed webhooks (Standard Webhooks) through a durable outbox.

An alert and its delivery rows commit in one transaction (``outbox.enqueue_deliveries``);
the ``Dispatcher`` then sends each row until the receiver answers 2xx or the retry schedule
runs out, so that a receiver that is down, slow or failing still gets every alert once.
"""

"""The serving tier's side of querywatch: log inference events, enforce decisions, degrade answers.

A model server installs the base ``querywatch`` package and imports only this package: it
needs the standard library and, for the Kafka sink, kafka-python (imported on the sink's
own thread, when it first connects). It never loads the engine (numpy, scikit-learn,
numba, river), so it adds nothing heavy to a serving process. See "Connect your model
server" in the README.
"""

from .asgi import QuerywatchASGI
from .converters import KServeJoiner, KServeReceiver, triton_events
from .decisions import Decision, DecisionClient
from .degrade import DEGRADE_MODES, degrade_prediction
from .emitter import Emitter
from .events import build_events, client_id_for_key, client_ip
from .hooks import Extractor
from .metrics import register_prometheus, render
from .sinks import JsonlSink, KafkaSink
from .wsgi import QuerywatchWSGI

__all__ = [
    "DEGRADE_MODES",
    "Decision",
    "DecisionClient",
    "Emitter",
    "Extractor",
    "JsonlSink",
    "KServeJoiner",
    "KServeReceiver",
    "KafkaSink",
    "QuerywatchASGI",
    "QuerywatchWSGI",
    "build_events",
    "client_id_for_key",
    "client_ip",
    "degrade_prediction",
    "register_prometheus",
    "render",
    "triton_events",
]
